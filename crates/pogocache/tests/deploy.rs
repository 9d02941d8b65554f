//! The Kubernetes manifests (deploy/kubernetes), checked offline: rendered
//! by `kubectl kustomize`, validated against the Kubernetes schemas for
//! several versions, the container contract checked by value, and this
//! build's binary run with the pod's arguments and probed by the pod's
//! health command. The checks live in `tests/deploy/kubernetes.py`.

mod common;

#[test]
fn kubernetes_manifests_render_validate_and_run() {
    if !common::have("kubectl", &["version", "--client"])
        || !common::have("python3", &["-c", "import kubernetes_validate, yaml"])
        || !common::have("openssl", &["version"])
    {
        return;
    }
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/deploy/kubernetes.py");
    let out = common::run(
        "python3",
        &[script, root, env!("CARGO_BIN_EXE_pogocache")],
        300,
    );
    assert!(out.starts_with("ok 5 objects"), "{out}");
}
