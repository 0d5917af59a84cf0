//! The shell sidecar's inventory, alerts and view of the instance, as the profile renders them.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, PodSpec};
use paperclipctl::profile::{self, Profile};
use paperclipctl::render::{self, Object, eso};

const SHELL: &str = "name: x\nshell:\n  image: r.example/shell:1\n";

fn profile(yaml: &str) -> Profile {
    profile::parse("profile.yaml", yaml).unwrap_or_else(|e| panic!("{e}: {:?}", e.help))
}

fn deployment(p: &Profile) -> Deployment {
    render::render(p)
        .objects()
        .find_map(|o| match o {
            Object::Deployment(d) => Some(d.clone()),
            _ => None,
        })
        .unwrap()
}

fn pod(p: &Profile) -> PodSpec {
    deployment(p).spec.unwrap().template.spec.unwrap()
}

fn checksum(p: &Profile) -> String {
    let template = deployment(p).spec.unwrap().template.metadata.unwrap();
    template.annotations.unwrap()["paperclipctl.io/shell-inventory-sha256"].clone()
}

fn inventory_file(p: &Profile) -> String {
    let configmap: ConfigMap = render::render(p)
        .objects()
        .find_map(|o| match o {
            Object::ConfigMap(c) if o.name() == "paperclip-shell-inventory" => Some(c.clone()),
            _ => None,
        })
        .unwrap();
    configmap.data.unwrap()["inventory.yaml"].clone()
}

#[test]
fn the_profiles_inventory_is_the_configmap_and_a_change_rolls_the_pod() {
    let first = profile(&format!(
        "{SHELL}  inventory:\n    npm-global: [cowsay]\n    pipx: [pycowsay]\n    cargo: [bat]\n    removed:\n      pipx: [black]\n"
    ));
    let parsed: serde_yaml_ng::Value = serde_yaml_ng::from_str(&inventory_file(&first)).unwrap();
    let expected: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        "{mise: [], npm-global: [cowsay], pipx: [pycowsay], cargo: [bat], removed: {pipx: [black]}}",
    )
    .unwrap();
    assert_eq!(parsed, expected);

    let same = profile(&format!(
        "{SHELL}  inventory:\n    cargo: [bat]\n    pipx: [pycowsay]\n    npm-global: [cowsay]\n    removed: {{pipx: [black]}}\n"
    ));
    assert_eq!(
        checksum(&first),
        checksum(&same),
        "the same inventory rolls nothing"
    );
    let changed = profile(&format!(
        "{SHELL}  inventory:\n    npm-global: [cowsay]\n    pipx: [pycowsay]\n    cargo: [bat, fd-find]\n"
    ));
    assert_ne!(checksum(&first), checksum(&changed));
}

#[test]
fn without_an_inventory_the_sidecar_gets_the_images_default() {
    let file = inventory_file(&profile(SHELL));
    let parsed: serde_yaml_ng::Value = serde_yaml_ng::from_str(&file).unwrap();
    let image: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(include_str!("../../embedded/shell-image/inventory.yaml")).unwrap();
    assert_eq!(parsed, image);
}

#[test]
fn inventory_entries_that_are_not_one_package_are_refused_naming_the_entry() {
    let cases = [
        (
            "npm-global: [cowsay, \"--registry=http://evil\"]",
            "shell.inventory.npm-global[1]",
            "option",
        ),
        (
            "pipx: [\"black ruff\"]",
            "shell.inventory.pipx[0]",
            "not a tool name",
        ),
        (
            "cargo: [\"\"]",
            "shell.inventory.cargo[0]",
            "not a tool name",
        ),
        (
            "cargo: [bat]\n    removed:\n      cargo: [fd-find, bat]",
            "shell.inventory.removed.cargo[1]",
            "also listed under cargo",
        ),
        ("brew: [jq]", "shell.inventory.brew", "unknown field `brew`"),
    ];
    for (lists, path, message) in cases {
        let yaml = format!("{SHELL}  inventory:\n    {lists}\n");
        let e = profile::parse("profile.yaml", &yaml).expect_err(&yaml);
        assert_eq!(e.path, path, "{yaml}\n{e}");
        assert!(e.message.contains(message), "{yaml}\n{e}");
        assert!(
            e.origin.starts_with("profile.yaml:"),
            "no line for {path}: {}",
            e.origin
        );
    }
}

#[test]
fn telegram_keys_sync_into_an_optional_secret_the_sidecar_alone_loads() {
    let p = profile(&format!(
        "{SHELL}  alerts:\n    telegram:\n      botTokenKey: BOT_TOKEN\n      chatIdKey: BOT_CHAT\n"
    ));
    let release = render::render(&p);
    assert!(release.findings.is_empty(), "{:?}", release.findings);
    let es = release
        .objects()
        .find_map(|o| match o {
            Object::ExternalSecret(es) if o.name() == "paperclip-shell-alerts" => Some(es),
            _ => None,
        })
        .expect("an ExternalSecret for the alert settings");
    assert!(eso::is_optional(es), "the pod must start without the keys");
    let keys: Vec<(&str, &str)> = es
        .spec
        .data
        .iter()
        .map(|d| (d.remote_ref.key.as_str(), d.secret_key.as_str()))
        .collect();
    assert_eq!(
        keys,
        [
            ("BOT_TOKEN", "TELEGRAM_BOT_TOKEN"),
            ("BOT_CHAT", "TELEGRAM_CHAT_ID")
        ]
    );

    let pod = pod(&p);
    let loads = |name: &str| -> Vec<(String, Option<bool>)> {
        let container = pod.containers.iter().find(|c| c.name == name).unwrap();
        container
            .env_from
            .iter()
            .flatten()
            .filter_map(|e| e.secret_ref.as_ref())
            .map(|s| (s.name.clone(), s.optional))
            .collect()
    };
    assert_eq!(
        loads("paperclip-shell"),
        [("paperclip-shell-alerts".to_string(), Some(true))]
    );
    assert!(
        loads("paperclip")
            .iter()
            .all(|(n, _)| n != "paperclip-shell-alerts")
    );

    let same_key = "  alerts:\n    telegram:\n      botTokenKey: BOT\n      chatIdKey: BOT\n";
    let e = profile::parse("profile.yaml", &format!("{SHELL}{same_key}")).unwrap_err();
    assert_eq!(e.path, "shell.alerts.telegram.chatIdKey");
}

#[test]
fn the_sidecar_sees_the_agents_workspaces_but_not_the_instance_key() {
    let pod = pod(&profile(SHELL));
    let shell = pod
        .containers
        .iter()
        .find(|c| c.name == "paperclip-shell")
        .unwrap();
    let data: Vec<_> = shell
        .volume_mounts
        .iter()
        .flatten()
        .filter(|m| m.name == "data")
        .collect();
    assert_eq!(data.len(), 1, "{data:?}");
    assert_eq!(
        data[0].sub_path.as_deref(),
        Some("instances/default/workspaces")
    );
    assert_eq!(data[0].read_only, Some(true));
    // The directory exists, made by the app's user, before the kubelet mounts it.
    let init = &pod.init_containers.as_ref().unwrap()[0];
    assert_eq!(
        init.command.as_deref().unwrap().last().map(String::as_str),
        Some("/paperclip/instances/default/workspaces")
    );
    assert_eq!(
        init.security_context.as_ref().unwrap().run_as_user,
        Some(1000)
    );
}

#[test]
fn a_service_account_token_is_mounted_only_when_the_profile_asks() {
    assert_eq!(
        pod(&profile(SHELL)).automount_service_account_token,
        Some(false)
    );
    let asked = profile(&format!("{SHELL}app:\n  serviceAccountToken: true\n"));
    assert_eq!(pod(&asked).automount_service_account_token, Some(true));
    let e = profile::parse(
        "profile.yaml",
        "name: x\napp:\n  serviceAccountToken: yes please\n",
    )
    .unwrap_err();
    assert_eq!(e.path, "app.serviceAccountToken");
}
