use std::time::Duration;

use super::{Limits, MemberView, OpTime, Refusal, SetView, check};

fn member(host: &str, state: &str, lag_secs: i64) -> MemberView {
    let now = 1_800_000_000_000_i64;
    MemberView {
        host: host.to_owned(),
        state: state.to_owned(),
        healthy: !state.starts_with('('),
        votes: 1,
        priority: 1.0,
        hidden: false,
        arbiter: state == "ARBITER",
        optime: Some(OpTime {
            secs: 1_800_000_000 - lag_secs as u32,
            inc: 1,
            term: 3,
        }),
        optime_millis: Some(now - lag_secs * 1000),
    }
}

fn set(members: Vec<MemberView>) -> SetView {
    SetView {
        name: "circle".to_owned(),
        members,
    }
}

fn limits() -> Limits {
    Limits {
        max_lag: Duration::from_secs(30),
        any_member: false,
    }
}

fn healthy_three() -> SetView {
    set(vec![
        member("m1:27017", "PRIMARY", 0),
        member("m2:27017", "SECONDARY", 1),
        member("m3:27017", "SECONDARY", 2),
    ])
}

#[test]
fn a_caught_up_secondary_of_a_healthy_three_member_set_is_cleared() {
    let cleared = check(&healthy_three(), "M2:27017", &limits()).unwrap();
    assert_eq!(cleared.optime.unwrap().term, 3);
}

#[test]
fn the_primary_is_refused() {
    let refusals = check(&healthy_three(), "m1:27017", &limits()).unwrap_err();
    assert!(refusals.contains(&Refusal::IsPrimary {
        member: "m1:27017".to_owned()
    }));
}

#[test]
fn another_member_down_is_refused_with_both_majorities() {
    let view = set(vec![
        member("m1:27017", "PRIMARY", 0),
        member("m2:27017", "SECONDARY", 0),
        member("m3:27017", "(not reachable/healthy)", 0),
    ]);
    let refusals = check(&view, "m2:27017", &limits()).unwrap_err();
    assert!(
        refusals
            .iter()
            .any(|r| matches!(r, Refusal::OtherMemberDown { member, .. } if member == "m3:27017"))
    );
    assert!(refusals.contains(&Refusal::NoVotingMajority {
        remaining: 1,
        needed: 2
    }));
    assert!(refusals.contains(&Refusal::NoWriteMajority {
        remaining: 1,
        needed: 2
    }));
}

#[test]
fn lag_over_the_limit_is_refused_for_this_member_and_counts_against_the_write_majority() {
    let view = set(vec![
        member("m1:27017", "PRIMARY", 0),
        member("m2:27017", "SECONDARY", 45),
        member("m3:27017", "SECONDARY", 0),
    ]);
    let refusals = check(&view, "m2:27017", &limits()).unwrap_err();
    assert_eq!(
        refusals,
        vec![Refusal::Lagging {
            member: "m2:27017".to_owned(),
            seconds: Some(45),
            limit: 30
        }]
    );
    // Stopping m3 would leave m2, too far behind to acknowledge majority
    // writes in time.
    let refusals = check(&view, "m3:27017", &limits()).unwrap_err();
    assert_eq!(
        refusals,
        vec![Refusal::NoWriteMajority {
            remaining: 1,
            needed: 2
        }]
    );
}

#[test]
fn an_arbiter_keeps_the_vote_but_not_the_write_majority() {
    // P-S-A: stopping the secondary keeps a voting majority (P + A) but
    // w: majority would need two data-bearing voters.
    let view = set(vec![
        member("m1:27017", "PRIMARY", 0),
        member("m2:27017", "SECONDARY", 0),
        member("m3:27017", "ARBITER", 0),
    ]);
    let refusals = check(&view, "m2:27017", &limits()).unwrap_err();
    assert_eq!(
        refusals,
        vec![Refusal::NoWriteMajority {
            remaining: 1,
            needed: 2
        }]
    );
}

#[test]
fn a_hidden_backup_member_is_preferred_unless_any_member_is_passed() {
    let mut view = set(vec![
        member("m1:27017", "PRIMARY", 0),
        member("m2:27017", "SECONDARY", 0),
        member("m3:27017", "SECONDARY", 0),
        member("m4:27017", "SECONDARY", 0),
        member("m5:27017", "SECONDARY", 0),
    ]);
    view.members[4].hidden = true;
    view.members[4].priority = 0.0;
    let refusals = check(&view, "m2:27017", &limits()).unwrap_err();
    assert_eq!(
        refusals,
        vec![Refusal::PreferOther {
            member: "m5:27017".to_owned()
        }]
    );
    assert!(check(&view, "m5:27017", &limits()).is_ok());
    let any = Limits {
        any_member: true,
        ..limits()
    };
    assert!(check(&view, "m2:27017", &any).is_ok());
}

#[test]
fn a_member_not_in_the_set_or_not_secondary_is_refused() {
    assert_eq!(
        check(&healthy_three(), "m9:27017", &limits()).unwrap_err(),
        vec![Refusal::NotInSet {
            member: "m9:27017".to_owned()
        }]
    );
    let view = set(vec![
        member("m1:27017", "PRIMARY", 0),
        member("m2:27017", "RECOVERING", 0),
        member("m3:27017", "SECONDARY", 0),
    ]);
    let refusals = check(&view, "m2:27017", &limits()).unwrap_err();
    assert!(refusals.contains(&Refusal::NotSecondary {
        member: "m2:27017".to_owned(),
        state: "RECOVERING".to_owned()
    }));
}

#[test]
fn optimes_round_trip_through_their_tag_form() {
    let optime = OpTime {
        secs: 1_800_000_000,
        inc: 7,
        term: 12,
    };
    assert_eq!(OpTime::parse(&optime.to_string()), Some(optime));
    assert_eq!(OpTime::parse("1.2"), None);
    assert_eq!(OpTime::parse("a.b/c"), None);
}
