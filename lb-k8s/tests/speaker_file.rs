//! The file-source speaker reads its file through the same loader as `plan` and `validate`:
//! a legacy MetalLB ConfigMap in the file is converted, not silently dropped, and a file that
//! cannot be read or converted is an error naming it. Documentation prefixes only.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::PathBuf;

use lb_k8s::Error;
use lb_k8s::speaker::source::read_file;
use lb_metallb::plan::PlanOptions;

const FILE: &str = "
apiVersion: v1
kind: ConfigMap
metadata: {name: config, namespace: metallb-system}
data:
  config: |
    address-pools:
    - name: legacy
      protocol: layer2
      addresses:
      - 192.0.2.240-192.0.2.250
---
apiVersion: v1
kind: Node
metadata: {name: node-a, labels: {kubernetes.io/hostname: node-a}}
status: {addresses: [{type: InternalIP, address: 192.0.2.1}]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  type: LoadBalancer
  clusterIPs: [203.0.113.10]
  ports: [{port: 80, protocol: TCP}]
";

/// A file of this test's own, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, text: &str) -> Self {
        let path = std::env::temp_dir().join(format!("lb-k8s-{}-{name}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        Self(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn a_legacy_config_map_in_the_file_is_converted_and_its_pool_used() {
    let file = TempFile::new("legacy.yaml", FILE);
    let inputs = read_file(&file.0, &PlanOptions::default()).unwrap();
    assert!(inputs.config.pools.get("legacy").is_some());
    assert_eq!(inputs.config.l2_advertisements.len(), 1);
    assert_eq!(inputs.services.len(), 1);
    assert_eq!(
        inputs.services[0].view.ingress_ips,
        vec!["192.0.2.240".parse::<std::net::IpAddr>().unwrap()]
    );
    assert!(
        inputs
            .warnings
            .iter()
            .any(|w| w.contains("legacy MetalLB configuration converted")),
        "{:?}",
        inputs.warnings
    );
}

#[test]
fn an_unconvertible_legacy_config_map_is_an_error_naming_it() {
    let bad = FILE.replace(
        "    address-pools:\n",
        "    peers:\n    - {my-asn: 64512, peer-asn: 64500, peer-address: 198.51.100.1, hold-time: 2s}\n    address-pools:\n",
    );
    let file = TempFile::new("bad.yaml", &bad);
    let e = read_file(&file.0, &PlanOptions::default()).unwrap_err();
    assert!(matches!(e, Error::Inputs(_)), "{e:?}");
    assert!(e.to_string().contains("metallb-system/config"), "{e}");
}

#[test]
fn a_missing_file_is_an_error_naming_it() {
    let path = std::env::temp_dir().join(format!("lb-k8s-{}-absent.yaml", std::process::id()));
    let e = read_file(&path, &PlanOptions::default()).unwrap_err();
    assert!(matches!(e, Error::ReadFile { .. }), "{e:?}");
    assert!(e.to_string().contains("absent.yaml"), "{e}");
}
