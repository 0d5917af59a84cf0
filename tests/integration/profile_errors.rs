//! Malformed profiles: each must fail with the exact field path, its line, and a useful message.

use paperclipctl::profile::{self, ProfileError};

struct Case {
    yaml: &'static str,
    path: &'static str,
    /// The line the error points at (None when the value came from nowhere in the file).
    line: Option<usize>,
    message: &'static str,
    help: Option<&'static str>,
}

const fn case(
    yaml: &'static str,
    path: &'static str,
    line: Option<usize>,
    message: &'static str,
    help: Option<&'static str>,
) -> Case {
    Case {
        yaml,
        path,
        line,
        message,
        help,
    }
}

const CASES: &[Case] = &[
    case(
        "name: x\napp:\n  ingress:\n    hosts:\n      - paperclip.example.com\n      - https://paperclip.example.com\n",
        "app.ingress.hosts[1]",
        Some(6),
        "\"https://paperclip.example.com\" is not a DNS name an Ingress can route",
        None,
    ),
    case(
        "name: x\napp:\n  ingress:\n    hosts: [paperclip.example.com]\n    tls: {}\n",
        "app.ingress.tls",
        Some(5),
        "tls names neither a certificate Secret nor an issuer",
        None,
    ),
    case(
        "name: x\napp:\n  publicUrl: http://paperclip.example.com\n  ingress:\n    hosts: [paperclip.example.com]\n    tls: {secretName: cert}\n",
        "app.publicUrl",
        Some(3),
        "http://paperclip.example.com is not what the Ingress serves: https://paperclip.example.com",
        Some(
            "remove publicUrl (it then follows the Ingress), or set it to https://paperclip.example.com",
        ),
    ),
    case(
        "name: x\nnetworkPolicy:\n  enabled: yes please\n",
        "networkPolicy.enabled",
        Some(3),
        "invalid type",
        None,
    ),
    case(
        "name: x\nstrage:\n  className: longhorn\n",
        "strage",
        Some(2),
        "unknown field `strage`",
        Some("did you mean `storage`?"),
    ),
    case(
        "name: x\napp:\n  resources:\n    limit:\n      memory: 1Gi\n",
        "app.resources.limit",
        Some(4),
        "unknown field `limit`",
        Some("did you mean `limits`?"),
    ),
    case(
        "name: x\napp:\n  resources:\n    limits:\n      memory: 12GB\n",
        "app.resources.limits.memory",
        Some(5),
        "invalid quantity \"12GB\"",
        None,
    ),
    case(
        "name: x\ndatabase:\n  persistence:\n    size: five\n",
        "database.persistence.size",
        Some(4),
        "invalid quantity \"five\"",
        None,
    ),
    case(
        "name: x\napp:\n  resources:\n    requests:\n      cpu: 1.2.3\n",
        "app.resources.requests.cpu",
        Some(5),
        "invalid quantity",
        None,
    ),
    case(
        "name: x\napp:\n  service:\n    type: LoadBalancer\n    loadBalancerIp: 192.168.55.300\n",
        "app.service.loadBalancerIp",
        Some(5),
        "invalid IP address \"192.168.55.300\"",
        None,
    ),
    case(
        "name: x\nshell:\n  image: r.example/shell:1\n  service:\n    type: LoadBalancer\n    loadBalancerIp: shell-host\n",
        "shell.service.loadBalancerIp",
        Some(6),
        "invalid IP address",
        None,
    ),
    case(
        "name: x\napp:\n  image: Ghcr.io/Paperclip/App:1\n",
        "app.image",
        Some(3),
        "invalid image reference",
        None,
    ),
    case(
        "name: x\ndatabase:\n  image: postgres 16\n",
        "database.image",
        Some(3),
        "must not be empty or contain spaces",
        None,
    ),
    case(
        "name: x\nshell:\n  image: r.example/shell:1\n  service:\n    moshPorts: 60015-60000\n",
        "shell.service.moshPorts",
        Some(5),
        "first port must not be above the last",
        None,
    ),
    case(
        "name: x\nshell:\n  image: r.example/shell:1\n  service:\n    moshPorts: 1000-2000\n",
        "shell.service.moshPorts",
        Some(5),
        "at most 100 ports",
        None,
    ),
    case(
        "name: x\nstorage:\n  className: Longhorn_SSD\n",
        "storage.className",
        Some(3),
        "invalid name \"Longhorn_SSD\"",
        None,
    ),
    case(
        "name: x\nnamespace: Paperclip\n",
        "namespace",
        Some(2),
        "invalid name \"Paperclip\"",
        None,
    ),
    case(
        "name: x\napp:\n  strategy: Recreat\n",
        "app.strategy",
        Some(3),
        "unknown variant `Recreat`",
        Some("did you mean `Recreate`?"),
    ),
    case(
        "name: x\napp:\n  service:\n    type: Loadbalancer\n",
        "app.service.type",
        Some(4),
        "unknown variant `Loadbalancer`",
        Some("did you mean `LoadBalancer`?"),
    ),
    case(
        "name: x\napp:\n  service:\n    port: 70000\n",
        "app.service.port",
        Some(4),
        "70000",
        None,
    ),
    case(
        "name: x\napp:\n  service:\n    type: ClusterIP\n    loadBalancerIp: 10.0.0.1\n",
        "app.service.loadBalancerIp",
        Some(5),
        "needs a Service of type LoadBalancer",
        Some("set app.service.type: LoadBalancer"),
    ),
    case(
        "name: x\napp:\n  service:\n    type: LoadBalancer\n    loadBalancerIp: 10.0.0.1\nshell:\n  image: r.example/shell:1\n  service:\n    type: LoadBalancer\n    loadBalancerIp: 10.0.0.1\n",
        "shell.service.loadBalancerIp",
        Some(10),
        "already the app's loadBalancerIp",
        None,
    ),
    case(
        "name: x\nsecrets:\n  externalSecrets:\n    - name: a\n      keys: [{remote: A}]\n    - name: a\n      keys: [{remote: B}]\n",
        "secrets.externalSecrets[1].name",
        Some(6),
        "a second ExternalSecret named a",
        None,
    ),
    case(
        "name: x\nsecrets:\n  externalSecrets:\n    - name: a\n      keys: []\n",
        "secrets.externalSecrets[0].keys",
        Some(5),
        "has no keys",
        None,
    ),
    case(
        "name: x\nsecrets:\n  externalSecrets:\n    - name: a\n      keys:\n        - remote: A\n          as: Bad Name\n",
        "secrets.externalSecrets[0].keys[0].as",
        Some(7),
        "invalid variable name \"Bad Name\"",
        None,
    ),
    case(
        "name: x\nsecrets:\n  externalSecrets:\n    - name: a\n      keys:\n        - remote: A\n        - remote: B\n          as: A\n",
        "secrets.externalSecrets[0].keys[1]",
        Some(7),
        "A is written twice into Secret a",
        None,
    ),
    case(
        "name: x\nsecrets:\n  store:\n    secretsPath: paperclip\n",
        "secrets.store.secretsPath",
        Some(4),
        "not an absolute Infisical folder path",
        Some("start it with '/'"),
    ),
    case(
        "name: x\nsecrets:\n  store:\n    hostApi: infisical.local\n",
        "secrets.store.hostApi",
        Some(4),
        "must start with http:// or https://",
        None,
    ),
    case(
        "name: x\nsecrets:\n  refreshInterval: 1d\n",
        "secrets.refreshInterval",
        Some(3),
        "invalid duration \"1d\"",
        None,
    ),
    case(
        "name: x\napp:\n  env:\n    DATABASE_URL: postgres://x\n",
        "app.env.DATABASE_URL",
        Some(4),
        "set by paperclipctl",
        None,
    ),
    case(
        "name: x\napp:\n  env:\n    PAPERCLIP_AUTH_BASE_URL_MODE: auto\n",
        "app.env.PAPERCLIP_AUTH_BASE_URL_MODE",
        Some(4),
        "set by paperclipctl",
        None,
    ),
    case(
        "name: x\napp:\n  publicUrl: http://x:3100\n  deploymentMode: local_trusted\n",
        "app.deploymentMode",
        Some(4),
        "local_trusted cannot run in a pod",
        Some("use deploymentMode: authenticated"),
    ),
    case(
        "name: x\napp:\n  env:\n    OPENAI_API_KEY: sk-123\n",
        "app.env.OPENAI_API_KEY",
        Some(4),
        "looks like a credential",
        Some("keep it in Infisical"),
    ),
    case(
        "name: x\nsecrets:\n  externalSecrets:\n    - name: a\n      keys: [{remote: A}]\n      static:\n        AUTH_TOKEN: abc\n",
        "secrets.externalSecrets[0].static.AUTH_TOKEN",
        Some(7),
        "looks like a credential",
        None,
    ),
    case(
        "name: x\napp:\n  placement:\n    tolerations:\n      - key: nvidia.com/gpu\n        value: present\n",
        "app.placement.tolerations[0].value",
        Some(6),
        "operator Exists cannot have a value",
        None,
    ),
    case(
        "name: x\napp:\n  placement:\n    tolerations:\n      - key: nvidia.com/gpu\n        effect: NoScheduled\n",
        "app.placement.tolerations[0].effect",
        Some(6),
        "unknown variant `NoScheduled`",
        Some("did you mean `NoSchedule`?"),
    ),
    case(
        "name: x\napp:\n  probes:\n    readiness:\n      type: http\n",
        "app.probes.readiness.path",
        Some(5),
        "needs a path",
        None,
    ),
    case(
        "name: x\nshell:\n  image: r.example/shell:1\n  authorizedKeys:\n    - \"-----BEGIN OPENSSH PRIVATE KEY-----\"\n",
        "shell.authorizedKeys[0]",
        Some(5),
        "not an OpenSSH public key",
        Some("never a private key"),
    ),
    case(
        "name: x\nshell:\n  home:\n    size: 1Gi\n",
        "shell",
        Some(3),
        "missing field `image`",
        None,
    ),
    case(
        "namespace: paperclip\n",
        ".",
        Some(1),
        "missing field `name`",
        None,
    ),
    case(
        "name: x\napp:\n  allowedHostnames:\n    - http://paperclip.example\n",
        "app.allowedHostnames[0]",
        Some(4),
        "is not a host name",
        None,
    ),
    case(
        "name: x\napp:\n  envFrom:\n    - secret: paperclip-gemini\n",
        "app.envFrom[0].secret",
        Some(4),
        "nothing creates it",
        Some("optional: true"),
    ),
    case(
        "name: x\napp:\n  publicUrl: localhost:3100\n",
        "app.publicUrl",
        Some(3),
        "must start with http:// or https://",
        None,
    ),
    case(
        "name: x\ndatabase:\n  metrics: {}\n",
        "database.metrics",
        Some(3),
        "missing field `image`",
        None,
    ),
    case("- name: x\n", ".", Some(1), "invalid type: sequence", None),
    case(
        "name: x\napp:\n  image: [a, b]\n",
        "app.image",
        Some(3),
        "invalid type: sequence",
        None,
    ),
    case(
        "name: x\nshell:\n  image: ghcr.io/me/shell:1\n  pullSecret:\n    registry: https://ghcr.io\n    usernameKey: GHCR_USERNAME\n    passwordKey: GHCR_TOKEN\n",
        "shell.pullSecret.registry",
        Some(5),
        "invalid registry \"https://ghcr.io\"",
        None,
    ),
    case(
        "name: x\nshell:\n  image: ghcr.io/me/shell:1\n  pullSecret:\n    registry: quay.io\n    usernameKey: GHCR_USERNAME\n    passwordKey: GHCR_TOKEN\n",
        "shell.pullSecret.registry",
        Some(5),
        "the login is for quay.io, but shell.image comes from ghcr.io",
        Some("set registry: ghcr.io"),
    ),
    case(
        "name: x\nshell:\n  image: ghcr.io/me/shell:1\n  pullSecret:\n    registry: ghcr.io\n    usernameKey: GHCR_TOKEN\n    passwordKey: GHCR_TOKEN\n",
        "shell.pullSecret.passwordKey",
        Some(7),
        "GHCR_TOKEN is also the usernameKey",
        None,
    ),
    case(
        "name: x\nshell:\n  image: ghcr.io/me/shell:1\n  pullSecret:\n    registry: ghcr.io\n    username: me\n",
        "shell.pullSecret.username",
        Some(6),
        "unknown field `username`",
        Some("did you mean `usernameKey`?"),
    ),
    case(
        "name: x\nshell:\n  image: ghcr.io/me/shell:1\n  pullSecret:\n    registry: ghcr.io\n    usernameKey: U\n    passwordKey: P\nsecrets:\n  externalSecrets:\n    - name: paperclip-shell-pull\n      keys: [{remote: X}]\n",
        "secrets.externalSecrets[0].name",
        Some(10),
        "paperclip-shell-pull is the name of the shell's image pull secret",
        None,
    ),
    case(
        "name: x\nbackup:\n  recipients:\n    - age1qqq\n",
        "backup.recipients[0]",
        Some(4),
        "\"age1qqq\" is not an age recipient (age1…) or an ssh-ed25519/ssh-rsa public key",
        None,
    ),
];

fn error_for(yaml: &str) -> ProfileError {
    match profile::parse("bad.yaml", yaml) {
        Ok(_) => panic!("accepted:\n{yaml}"),
        Err(e) => e,
    }
}

#[test]
fn malformed_profiles_name_the_field_line_and_fix() {
    assert!(CASES.len() >= 25);
    for case in CASES {
        let e = error_for(case.yaml);
        let context = format!("profile:\n{}\nerror: {e}\nhelp: {:?}", case.yaml, e.help);
        assert_eq!(e.path, case.path, "{context}");
        assert!(e.message.contains(case.message), "{context}");
        match case.line {
            Some(line) => assert!(
                e.origin.starts_with(&format!("bad.yaml:{line}:")),
                "expected line {line}; {context}"
            ),
            None => assert_eq!(e.origin, "bad.yaml", "{context}"),
        }
        if let Some(help) = case.help {
            let got = e.help.as_deref().unwrap_or_default();
            assert!(got.contains(help), "expected help {help:?}; {context}");
        }
    }
}

#[test]
fn set_overrides_apply_and_errors_name_the_argument() {
    let sets = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let loaded = profile::load(
        "frank",
        &sets(&[
            "app.service.port=8080",
            "secrets.externalSecrets[2].optional=false",
        ]),
    )
    .unwrap();
    assert_eq!(loaded.profile.app.service.port, 8080);
    assert!(!loaded.profile.secrets.external_secrets[2].optional);

    let e = profile::load("frank", &sets(&["app.resources.limits.memory=12GB"])).unwrap_err();
    assert_eq!(e.origin, "--set app.resources.limits.memory=12GB");
    assert_eq!(e.path, "app.resources.limits.memory");

    let e = profile::load("frank", &sets(&["app.service.type=ClusterIP"])).unwrap_err();
    assert_eq!(e.origin, "--set app.service.type=ClusterIP");
    assert_eq!(e.path, "app.service.loadBalancerIp");

    let e = profile::load(
        "frank",
        &sets(&["secrets.externalSecrets[9].optional=true"]),
    )
    .unwrap_err();
    assert!(e.message.contains("past the end of a list of 4"), "{e}");

    let e = profile::load("frank", &sets(&["app.service.port"])).unwrap_err();
    assert!(
        e.message.contains("expected --set path.to.key=value"),
        "{e}"
    );
}

#[test]
fn unknown_profile_names_suggest_the_closest() {
    let e = profile::load("frnk", &[]).unwrap_err();
    assert_eq!(
        e.help.as_deref(),
        Some("did you mean `frank`? built-in profiles: default, frank")
    );
    let e = profile::load("./missing.yaml", &[]).unwrap_err();
    assert_eq!(e.origin, "./missing.yaml");
    assert!(e.message.contains("cannot read the profile"), "{e}");
}
