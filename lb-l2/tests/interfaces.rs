#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
//! Tests of link eligibility (`LinkInfo::eligibility`) and interface-name exclusion
//! (`ExcludePatterns`, `DEFAULT_EXCLUDE`).

use lb_l2::EthernetAddress;
use lb_l2::interfaces::{DEFAULT_EXCLUDE, ExcludePatterns, Ineligible, LinkInfo, PatternError};

const MAC: EthernetAddress = EthernetAddress([0x02, 0x00, 0x00, 0x00, 0x00, 0x01]);

/// A link that answers: up, ARP, not loopback, unicast MAC, no master.
fn good(name: &str) -> LinkInfo {
    LinkInfo {
        index: 2,
        name: name.to_owned(),
        mac: Some(MAC),
        up: true,
        carrier: true,
        noarp: false,
        loopback: false,
        master: None,
    }
}

fn excluded(pattern: &str) -> Ineligible {
    Ineligible::Excluded {
        pattern: pattern.to_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// LinkInfo::eligibility
// ---------------------------------------------------------------------------------------------

#[test]
fn a_plain_ethernet_link_is_eligible_with_its_mac() {
    for exclude in [ExcludePatterns::default(), ExcludePatterns::none()] {
        assert_eq!(good("eth0").eligibility(&exclude), Ok(MAC));
    }
}

#[test]
fn down_link_is_ineligible() {
    let link = LinkInfo {
        up: false,
        carrier: false,
        ..good("eth0")
    };
    let err = link.eligibility(&ExcludePatterns::default()).unwrap_err();
    assert_eq!(err, Ineligible::Down);
    assert_eq!(err.to_string(), "link is down");
}

#[test]
fn noarp_link_is_ineligible() {
    let link = LinkInfo {
        noarp: true,
        ..good("eth0")
    };
    let err = link.eligibility(&ExcludePatterns::default()).unwrap_err();
    assert_eq!(err, Ineligible::NoArp);
    assert_eq!(err.to_string(), "link has NOARP set");
}

#[test]
fn loopback_link_is_ineligible() {
    // A loopback whose name no pattern excludes.
    let link = LinkInfo {
        loopback: true,
        ..good("lo1")
    };
    let err = link.eligibility(&ExcludePatterns::default()).unwrap_err();
    assert_eq!(err, Ineligible::Loopback);
    assert_eq!(err.to_string(), "loopback");
    // `lo` itself, with no exclusions, is a loopback.
    let lo = LinkInfo {
        loopback: true,
        mac: Some(EthernetAddress::ZERO),
        ..good("lo")
    };
    assert_eq!(
        lo.eligibility(&ExcludePatterns::none()),
        Err(Ineligible::Loopback)
    );
}

#[test]
fn link_without_ethernet_address_is_ineligible() {
    let link = LinkInfo {
        mac: None,
        ..good("wg0")
    };
    let err = link.eligibility(&ExcludePatterns::default()).unwrap_err();
    assert_eq!(err, Ineligible::NoEthernetAddress);
    assert_eq!(err.to_string(), "no Ethernet address");
}

#[test]
fn link_with_zero_or_multicast_mac_is_ineligible() {
    for mac in [
        EthernetAddress::ZERO,
        EthernetAddress::BROADCAST,
        EthernetAddress([0x01, 0x00, 0x5e, 0x00, 0x00, 0x01]),
        EthernetAddress([0x33, 0x33, 0x00, 0x00, 0x00, 0x01]),
    ] {
        let link = LinkInfo {
            mac: Some(mac),
            ..good("eth0")
        };
        assert_eq!(
            link.eligibility(&ExcludePatterns::default()),
            Err(Ineligible::NoEthernetAddress),
            "{mac}"
        );
    }
}

#[test]
fn enslaved_link_is_ineligible_and_names_its_master() {
    let link = LinkInfo {
        master: Some(7),
        ..good("eth1")
    };
    let err = link.eligibility(&ExcludePatterns::default()).unwrap_err();
    assert_eq!(err, Ineligible::Enslaved { master: 7 });
    assert_eq!(err.to_string(), "enslaved to link 7");
}

#[test]
fn excluded_name_is_ineligible_and_names_the_pattern() {
    let err = good("docker0")
        .eligibility(&ExcludePatterns::default())
        .unwrap_err();
    assert_eq!(err, excluded("^docker.*"));
    assert_eq!(
        err.to_string(),
        "name matches exclude pattern \"^docker.*\""
    );
}

#[test]
fn excluded_name_wins_over_every_other_reason() {
    let worst = LinkInfo {
        index: 1,
        name: "lo".to_owned(),
        mac: None,
        up: false,
        carrier: false,
        noarp: true,
        loopback: true,
        master: Some(3),
    };
    assert_eq!(
        worst.eligibility(&ExcludePatterns::default()),
        Err(excluded("^lo$"))
    );
    // One flaw at a time, still the name.
    let flaws: [fn(&mut LinkInfo); 5] = [
        |l| l.up = false,
        |l| l.noarp = true,
        |l| l.loopback = true,
        |l| l.mac = None,
        |l| l.master = Some(4),
    ];
    for flaw in flaws {
        let mut link = good("veth1234");
        flaw(&mut link);
        assert_eq!(
            link.eligibility(&ExcludePatterns::default()),
            Err(excluded("^veth.*"))
        );
    }
}

#[test]
fn a_link_with_several_flaws_is_ineligible_without_exclusions() {
    let link = LinkInfo {
        index: 1,
        name: "eth0".to_owned(),
        mac: None,
        up: false,
        carrier: false,
        noarp: true,
        loopback: true,
        master: Some(3),
    };
    let err = link.eligibility(&ExcludePatterns::none()).unwrap_err();
    assert!(
        !matches!(err, Ineligible::Excluded { .. }),
        "nothing excludes it by name: {err:?}"
    );
}

#[test]
fn bond_and_bridge_masters_are_eligible_but_their_ports_are_not() {
    let bond = LinkInfo {
        index: 10,
        ..good("bond0")
    };
    let port = LinkInfo {
        index: 3,
        master: Some(10),
        ..good("eth2")
    };
    let exclude = ExcludePatterns::default();
    assert_eq!(bond.eligibility(&exclude), Ok(MAC));
    assert_eq!(
        port.eligibility(&exclude),
        Err(Ineligible::Enslaved { master: 10 })
    );
}

// ---------------------------------------------------------------------------------------------
// DEFAULT_EXCLUDE
// ---------------------------------------------------------------------------------------------

#[test]
fn default_exclude_is_metallbs_list() {
    assert_eq!(
        DEFAULT_EXCLUDE,
        &[
            "^docker.*",
            "^cbr.*",
            "^dummy.*",
            "^virbr.*",
            "^lxcbr.*",
            "^veth.*",
            "^lo$",
            "^cali.*",
            "^tunl.*",
            "^flannel.*",
            "^kube-ipvs.*",
            "^cni.*",
            "^nodelocaldns.*",
            "^lxc.*",
        ]
    );
    // Every default pattern compiles.
    assert!(ExcludePatterns::new(DEFAULT_EXCLUDE).is_ok());
}

#[test]
fn every_default_pattern_excludes_a_sample_name() {
    let exclude = ExcludePatterns::default();
    let samples = [
        ("docker0", "^docker.*"),
        ("docker_gwbridge", "^docker.*"),
        ("cbr0", "^cbr.*"),
        ("dummy0", "^dummy.*"),
        ("virbr0", "^virbr.*"),
        ("virbr0-nic", "^virbr.*"),
        // `^lxcbr.*` comes before `^lxc.*`, so it is the one reported.
        ("lxcbr0", "^lxcbr.*"),
        ("veth12", "^veth.*"),
        ("veth3a4b5c6@if2", "^veth.*"),
        ("lo", "^lo$"),
        ("cali123", "^cali.*"),
        ("calico", "^cali.*"),
        ("tunl0", "^tunl.*"),
        ("flannel.1", "^flannel.*"),
        ("kube-ipvs0", "^kube-ipvs.*"),
        ("cni0", "^cni.*"),
        ("nodelocaldns", "^nodelocaldns.*"),
        ("lxc1234abcd", "^lxc.*"),
    ];
    for (name, pattern) in samples {
        assert_eq!(exclude.matching(name), Some(pattern), "{name}");
        assert_eq!(
            good(name).eligibility(&exclude),
            Err(excluded(pattern)),
            "{name}"
        );
    }
    // Every pattern has a sample.
    for pattern in DEFAULT_EXCLUDE {
        assert!(
            samples.iter().any(|(_, p)| p == pattern),
            "{pattern} has no sample"
        );
    }
}

#[test]
fn lo_pattern_is_anchored_at_both_ends() {
    let exclude = ExcludePatterns::default();
    for name in ["lo1", "lo0", "loop", "local", "xlo", "ilo"] {
        assert_eq!(exclude.matching(name), None, "{name}");
        assert_eq!(good(name).eligibility(&exclude), Ok(MAC), "{name}");
    }
}

#[test]
fn other_patterns_are_anchored_at_the_start_only() {
    let exclude = ExcludePatterns::default();
    // Prefix match: anything may follow.
    assert_eq!(exclude.matching("docker"), Some("^docker.*"));
    assert_eq!(exclude.matching("vethXYZ"), Some("^veth.*"));
    // Not in the middle.
    for name in ["mydocker0", "br-veth0", "eth-cali", "xcni0"] {
        assert_eq!(exclude.matching(name), None, "{name}");
    }
    // Case-sensitive.
    assert_eq!(exclude.matching("Docker0"), None);
}

#[test]
fn ordinary_links_are_eligible_by_default() {
    let exclude = ExcludePatterns::default();
    for name in [
        "eth0",
        "eth1",
        "ens3",
        "enp0s31f6",
        "eno1",
        "bond0",
        "bond0.100",
        "br0",
        "vlan100",
        "wlan0",
    ] {
        assert_eq!(exclude.matching(name), None, "{name}");
        assert_eq!(good(name).eligibility(&exclude), Ok(MAC), "{name}");
    }
}

// ---------------------------------------------------------------------------------------------
// ExcludePatterns
// ---------------------------------------------------------------------------------------------

#[test]
fn invalid_pattern_is_an_error_naming_it() {
    let err = ExcludePatterns::new(&["^eth.*", "br(", "[z-a]"]).unwrap_err();
    assert_eq!(err.pattern, "br(");
    assert!(!err.reason.is_empty());
    let text = err.to_string();
    assert!(text.contains("\"br(\""), "{text}");
    assert!(text.contains("not a valid regular expression"), "{text}");
    assert!(text.contains(&err.reason), "{text}");
}

#[test]
fn invalid_pattern_error_equality() {
    let a: PatternError = ExcludePatterns::new(&["["]).unwrap_err();
    let b: PatternError = ExcludePatterns::new(&[String::from("[")]).unwrap_err();
    assert_eq!(a, b);
    assert_eq!(a.pattern, "[");
}

#[test]
fn custom_patterns_match_anywhere_unless_anchored() {
    let exclude = ExcludePatterns::new(&["storage", "^mgmt$"]).unwrap();
    assert_eq!(exclude.matching("eth-storage-1"), Some("storage"));
    assert_eq!(exclude.matching("mgmt"), Some("^mgmt$"));
    assert_eq!(exclude.matching("mgmt0"), None);
    assert_eq!(exclude.matching("eth0"), None);
    assert_eq!(
        good("eth-storage-1").eligibility(&exclude),
        Err(excluded("storage"))
    );
    // Custom patterns replace the defaults.
    assert_eq!(good("docker0").eligibility(&exclude), Ok(MAC));
}

#[test]
fn first_matching_pattern_is_reported() {
    let exclude = ExcludePatterns::new(&["^e", "^eth", "0$"]).unwrap();
    assert_eq!(exclude.matching("eth0"), Some("^e"));
    assert_eq!(exclude.matching("br0"), Some("0$"));
}

#[test]
fn empty_pattern_list_excludes_nothing() {
    let exclude = ExcludePatterns::new::<&str>(&[]).unwrap();
    assert_eq!(exclude.matching("docker0"), None);
    assert_eq!(exclude.matching(""), None);
}

#[test]
fn none_excludes_nothing() {
    let none = ExcludePatterns::none();
    for name in ["docker0", "veth12", "lo", "cali123", "eth0", ""] {
        assert_eq!(none.matching(name), None, "{name}");
    }
    assert_eq!(good("docker0").eligibility(&none), Ok(MAC));
    assert_eq!(good("lo").eligibility(&none), Ok(MAC));
}

#[test]
fn default_is_the_default_list() {
    let default = ExcludePatterns::default();
    let built = ExcludePatterns::new(DEFAULT_EXCLUDE).unwrap();
    for name in [
        "docker0",
        "lo",
        "lo1",
        "veth0",
        "eth0",
        "lxcbr0",
        "kube-ipvs0",
    ] {
        assert_eq!(default.matching(name), built.matching(name), "{name}");
    }
}
