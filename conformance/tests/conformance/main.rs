//! The conformance catalogue as tests: each test starts its scenario's world (connector
//! in-process, one shared clock) and runs the scenario body from the library.

mod a_inbound;
mod c_ca;
mod d_readonly;
mod f_faults;
mod i_isolation;
mod o_org;
mod r_revocation;
mod s_tools;
mod t_tokens;
mod x_scaleout;

/// Runs one catalogue scenario by id.
macro_rules! conformance_test {
    ($name:ident, $id:literal) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() -> anyhow::Result<()> {
            conformance::scenarios::run_in_process($id).await
        }
    };
}
pub(crate) use conformance_test;

#[test]
fn every_registered_scenario_has_a_unique_id() {
    let all = conformance::scenarios::all();
    let mut ids: Vec<_> = all.iter().map(|s| s.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), all.len());
}

#[test]
fn every_promise_of_the_gate_table_is_proven_by_some_scenario() {
    use conformance::scenarios::Promise;
    let all = conformance::scenarios::all();
    for promise in Promise::ALL {
        assert!(
            all.iter().any(|s| s.promise() == promise),
            "no scenario proves {}",
            promise.label()
        );
    }
    let of = |id: &str| all.iter().find(|s| s.id == id).map(|s| s.promise());
    assert_eq!(of("A03"), Some(Promise::TokenExpiry));
    assert_eq!(of("A07"), Some(Promise::TenantIsolation));
    assert_eq!(of("O04"), Some(Promise::Revocation));
    assert_eq!(of("T08"), Some(Promise::TenantIsolation));
    assert_eq!(of("D04"), Some(Promise::Audit));
    assert_eq!(of("S01"), Some(Promise::Protocol));
}
