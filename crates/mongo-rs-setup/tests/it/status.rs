//! status: healthy, a member down, the member back.

use std::time::Duration;

use mongo_rs_setup::{Session, apply, status};

use crate::{Lab, progress, wait_for};

#[tokio::test(flavor = "multi_thread")]
async fn status_reports_a_down_member_and_its_return() {
    let mut lab = Lab::start("circle");
    apply(&Session::new(&lab.spec), &progress).await.unwrap();
    let lag = Duration::from_secs(60);
    let healthy = status(&Session::new(&lab.spec), lag).await;
    assert!(healthy.healthy(), "{:?}", healthy.problems);
    // Sync sources reach the primary's view with the next heartbeat.
    let spec = lab.spec.clone();
    wait_for(
        "sync sources in the status",
        Duration::from_secs(60),
        || async {
            status(&Session::new(&spec), lag)
                .await
                .members
                .iter()
                .filter(|m| m.state == "SECONDARY")
                .all(|m| m.sync_source.is_some() && m.lag_seconds.is_some())
        },
    )
    .await;
    let mut states: Vec<&str> = healthy.members.iter().map(|m| m.state.as_str()).collect();
    states.sort_unstable();
    assert_eq!(states, ["PRIMARY", "SECONDARY", "SECONDARY"]);
    assert!(
        healthy
            .members
            .iter()
            .all(|m| m.auth_ok == Some(true) && m.reachable)
    );

    let primary = lab.primary_index().await;
    let down = (primary + 1) % 3;
    let host = lab.members[down].host();
    lab.members[down].kill();
    let unhealthy = status(&Session::new(&spec), lag).await;
    assert!(!unhealthy.healthy());
    assert!(
        unhealthy.problems.iter().any(|p| p.contains(&host)),
        "{:?}",
        unhealthy.problems
    );
    assert!(unhealthy.primary.is_some(), "two of three keep a primary");

    lab.members[down].restart().unwrap();
    wait_for(
        "the member to be healthy again",
        Duration::from_secs(90),
        || async { status(&Session::new(&spec), lag).await.healthy() },
    )
    .await;
}
