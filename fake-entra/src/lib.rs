//! fake-entra
