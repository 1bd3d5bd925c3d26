//! fake-graph
