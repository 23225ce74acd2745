//! The deploy files under `deploy/` are checked by the tools that read them in production:
//! promtool (the alerting rules, their unit tests, the scrape config, the dashboard's queries),
//! amtool (the Alertmanager config), kubernetes-validate (the manifests, strict) and
//! systemd-analyze (the unit). A checker that is not installed fails its test with a message
//! naming `scripts/setup.sh` (CI runs it), never a silent skip.
//!
//! Metric names used by the rules and the dashboard are compared with what chops' own registry
//! renders (`chops::metrics::get()`), so a renamed family breaks these tests, not the alerts.
//! YAML is read through the venv's PyYAML (installed with kubernetes-validate) as JSON.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

/// The Kubernetes API version the manifests are validated against (one kubernetes-validate knows).
const KUBERNETES_VERSION: &str = "1.33.0";
/// Exposure level × 10 that `systemd-analyze security` may report for the unit at most.
const SYSTEMD_EXPOSURE_MAX: &str = "20";

// ---------------------------------------------------------------------------------------------
// Files and tools

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn path(rel: &str) -> PathBuf {
    root().join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(path(rel)).unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
}

/// A fresh scratch directory under cargo's per-target tmp dir.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("deploy-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

fn venv_bin(name: &str) -> PathBuf {
    path(".venv/bin").join(name)
}

/// What a checker printed (stdout, then stderr) and whether it exited 0.
struct Ran {
    ok: bool,
    out: String,
}

/// Runs `program`; one that is not installed fails the test, naming the script that installs it.
fn run<S: AsRef<OsStr>>(program: impl AsRef<OsStr>, args: &[S]) -> Ran {
    let program = program.as_ref();
    let out = Command::new(program)
        .args(args)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{} cannot be run ({e}): install the deploy checkers with scripts/setup.sh \
                 (CI runs it; promtool: Debian prometheus, amtool: prometheus-alertmanager, \
                 systemd-analyze: systemd, kubernetes-validate: PyPI into .venv)",
                program.to_string_lossy()
            )
        });
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    Ran {
        ok: out.status.success(),
        out: text,
    }
}

/// Runs a checker that must succeed; returns its output.
fn check<S: AsRef<OsStr>>(program: impl AsRef<OsStr>, args: &[S]) -> String {
    let program = program.as_ref();
    let ran = run(program, args);
    assert!(
        ran.ok,
        "{} {:?} failed:\n{}",
        program.to_string_lossy(),
        args.iter()
            .map(|a| a.as_ref().to_owned())
            .collect::<Vec<_>>(),
        ran.out
    );
    ran.out
}

/// The documents of a YAML file, as JSON (PyYAML's safe loader).
fn yaml(rel: &str) -> Vec<Value> {
    let script = "import json, sys, yaml\n\
                  json.dump(list(yaml.safe_load_all(open(sys.argv[1]))), sys.stdout)";
    let file = path(rel);
    let out = check(
        venv_bin("python"),
        &[OsStr::new("-c"), OsStr::new(script), file.as_os_str()],
    );
    match serde_json::from_str(&out) {
        Ok(Value::Array(docs)) => docs,
        other => panic!("{rel}: not a YAML document list: {other:?}"),
    }
}

fn one_yaml(rel: &str) -> Value {
    let mut docs = yaml(rel);
    assert_eq!(docs.len(), 1, "{rel}: one YAML document");
    docs.remove(0)
}

fn write_json(file: &Path, v: &Value) {
    let text = serde_json::to_string_pretty(v).expect("JSON");
    std::fs::write(file, text).unwrap_or_else(|e| panic!("write {}: {e}", file.display()));
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string at {pointer} in {v}"))
}

// ---------------------------------------------------------------------------------------------
// chops' own metrics

/// Every sample name chops' `/metrics` can carry, in both encodings it serves: the samples
/// rendered, plus what each `# TYPE` line implies (a histogram's `_bucket`/`_sum`/`_count`,
/// a counter's `_total`) for families that have no sample yet.
fn exported_names() -> BTreeSet<String> {
    // Replica labels (`set_replica_labels`) only add a label, never a name: left as configured,
    // since other tests in the binary may share this registry.
    let m = chops::metrics::get();
    let commands: Vec<String> = chops::discord::commands()
        .iter()
        .map(|c| c.qualified_name.to_string())
        .collect();
    m.init_interactions(&commands);
    let prometheus = names_in_text(&m.prometheus_text());
    let openmetrics = names_in_text(&m.openmetrics_text());
    assert_eq!(
        prometheus, openmetrics,
        "both encodings carry the same sample names"
    );
    prometheus
}

fn names_in_text(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        if let Some(decl) = line.strip_prefix("# TYPE ") {
            let mut parts = decl.split_whitespace();
            let (name, kind) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            names.extend(family_samples(name, kind));
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_string());
        }
    }
    names
}

/// The sample names a family declared as `# TYPE name kind` is queried by.
fn family_samples(name: &str, kind: &str) -> Vec<String> {
    match kind {
        "counter" => vec![format!(
            "{}_total",
            name.strip_suffix("_total").unwrap_or(name)
        )],
        "histogram" => ["_bucket", "_sum", "_count"]
            .iter()
            .map(|s| format!("{name}{s}"))
            .collect(),
        _ => vec![name.to_string()],
    }
}

/// Families (as `# TYPE` declares them in the Prometheus text format) and their kind.
fn families() -> BTreeMap<String, String> {
    chops::metrics::get()
        .prometheus_text()
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|d| d.split_once(' '))
        .map(|(n, k)| (n.to_string(), k.to_string()))
        .collect()
}

/// Every `chops_…` metric name in a PromQL text (labels and alert names never start so).
fn chops_names(promql: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = promql.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b':';
    let mut i = 0;
    while let Some(at) = promql[i..].find("chops_") {
        let start = i + at;
        let mut end = start;
        while end < bytes.len() && ident(bytes[end]) {
            end += 1;
        }
        if start == 0 || !ident(bytes[start - 1]) {
            names.insert(promql[start..end].to_string());
        }
        i = end.max(start + 1);
    }
    names
}

// ---------------------------------------------------------------------------------------------
// Prometheus: rules, their unit tests, the scrape config

const RULES: &str = "deploy/prometheus/chops-rules.yml";
const RULE_TESTS: &str = "deploy/prometheus/chops-rules.test.yml";

fn alert_rules() -> Vec<Value> {
    let rules = one_yaml(RULES);
    let groups = rules["groups"].as_array().expect("groups");
    groups
        .iter()
        .flat_map(|g| g["rules"].as_array().expect("rules").clone())
        .collect()
}

fn alert_names() -> BTreeSet<String> {
    alert_rules()
        .iter()
        .map(|r| str_at(r, "/alert").to_string())
        .collect()
}

#[test]
fn rules_pass_promtool_check() {
    let out = check("promtool", &["check", "rules", RULES]);
    let n = alert_rules().len();
    assert!(
        out.contains(&format!("SUCCESS: {n} rules found")),
        "promtool should find the {n} rules:\n{out}"
    );
    let want = [
        "ChopsDown",
        "ChopsAbsent",
        "ChopsNotReady",
        "ChopsIncidentsGivenUp",
        "ChopsAlertsSkipped",
        "ChopsProbeErrorsRising",
        "ChopsWebhookRejections",
        "ChopsAuditChainBroken",
    ];
    let have = alert_names();
    for a in want {
        assert!(have.contains(a), "{RULES} lacks {a}: {have:?}");
    }
}

#[test]
fn rule_unit_tests_pass() {
    let out = check("promtool", &["test", "rules", RULE_TESTS]);
    assert!(out.contains("SUCCESS"), "{out}");
}

/// The rule tests, rewritten to run against `rules` (absolute path) with `keep` deciding which
/// alert cases stay; promtool must fail and name every alert of the rules file in its failures.
fn mutant_fails_for_every_alert(name: &str, rules: Value, keep: impl Fn(&Value) -> bool) {
    let dir = scratch(name);
    let rules_file = dir.join("rules.json");
    write_json(&rules_file, &rules);
    let mut tests = one_yaml(RULE_TESTS);
    tests["rule_files"] = json!([rules_file.to_str().expect("utf-8 path")]);
    for t in tests["tests"].as_array_mut().expect("tests") {
        if let Some(cases) = t["alert_rule_test"].as_array_mut() {
            cases.retain(&keep);
        }
    }
    let tests_file = dir.join("tests.json");
    write_json(&tests_file, &tests);
    let ran = run(
        "promtool",
        &[
            OsStr::new("test"),
            OsStr::new("rules"),
            tests_file.as_os_str(),
        ],
    );
    assert!(!ran.ok, "{name}: promtool should fail:\n{}", ran.out);
    for alert in alert_names() {
        assert!(
            ran.out.contains(&format!("alertname: {alert},")),
            "{name}: no evaluated case of {alert} noticed the change:\n{}",
            ran.out
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Rules whose every expression is replaced by `expr` (and `for` dropped).
fn rules_with_expr(expr: &str) -> Value {
    let mut rules = one_yaml(RULES);
    for g in rules["groups"].as_array_mut().expect("groups") {
        for r in g["rules"].as_array_mut().expect("rules") {
            r["expr"] = json!(expr);
            r.as_object_mut().expect("rule").remove("for");
        }
    }
    rules
}

fn expects_alerts(case: &Value) -> bool {
    case["exp_alerts"].as_array().is_some_and(|a| !a.is_empty())
}

/// Every alert has a case where it fires: with rules that never fire, each of them fails.
#[test]
fn rule_tests_have_a_firing_case_per_alert() {
    mutant_fails_for_every_alert("silent", rules_with_expr("absent(vector(1))"), |_| true);
}

/// Every alert has a case where it stays quiet: with rules that always fire, those fail too.
#[test]
fn rule_tests_have_a_quiet_case_per_alert() {
    mutant_fails_for_every_alert("loud", rules_with_expr("vector(1)"), |c| !expects_alerts(c));
}

#[test]
fn scrape_config_passes_promtool_and_matches_the_rules() {
    let out = check(
        "promtool",
        &["check", "config", "deploy/prometheus/prometheus.yml"],
    );
    assert!(out.contains("SUCCESS: 1 rule files found"), "{out}");
    let cfg = one_yaml("deploy/prometheus/prometheus.yml");
    let jobs: BTreeMap<&str, &Value> = cfg["scrape_configs"]
        .as_array()
        .expect("scrape_configs")
        .iter()
        .map(|j| (str_at(j, "/job_name"), j))
        .collect();
    let chops = jobs.get("chops").expect("a scrape job named chops");
    assert_eq!(str_at(chops, "/metrics_path"), "/metrics");
    let port = chops::config::DEFAULT_HTTP_LISTEN
        .rsplit(':')
        .next()
        .expect("port");
    let target = str_at(chops, "/static_configs/0/targets/0");
    assert!(target.ends_with(&format!(":{port}")), "{target}");
    // Every job the rules select on is scraped by this config.
    for rule in alert_rules() {
        let expr = str_at(&rule, "/expr");
        for (at, _) in expr.match_indices("job=\"") {
            let job = expr[at + 5..].split('"').next().unwrap_or("");
            assert!(jobs.contains_key(job), "rule selects job {job:?}: {expr}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Alertmanager

#[test]
fn alertmanager_config_passes_amtool_and_reaches_chops() {
    let file = "deploy/prometheus/alertmanager.yml";
    let out = check("amtool", &["check-config", file]);
    assert!(out.contains("SUCCESS"), "{out}");
    let cfg = one_yaml(file);
    assert!(cfg["route"].is_object(), "a route: block");
    let receiver = cfg["receivers"]
        .as_array()
        .expect("receivers")
        .iter()
        .find(|r| r["webhook_configs"].is_array())
        .expect("a webhook receiver");
    let hook = &receiver["webhook_configs"][0];
    let url = str_at(hook, "/url");
    assert!(url.ends_with(":9187/alertmanager"), "{url}");
    assert_eq!(str_at(hook, "/http_config/authorization/type"), "Bearer");
    assert!(!str_at(hook, "/http_config/authorization/credentials_file").is_empty());
    // The route to chops groups by the label chops places alerts with (the deployed config's).
    let label = deployed_config()
        .config
        .webhook
        .expect("[webhook] in the ConfigMap")
        .cluster_label;
    let name = str_at(receiver, "/name");
    let routes = cfg["route"]["routes"].as_array().expect("routes");
    let to_chops = routes
        .iter()
        .find(|r| r["receiver"] == name)
        .expect("a route to chops");
    let group_by = to_chops["group_by"]
        .as_array()
        .or(cfg["route"]["group_by"].as_array())
        .expect("group_by");
    assert!(
        group_by.contains(&json!(label)),
        "group_by {label}: {group_by:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Kubernetes

const KUBE: &str = "deploy/kubernetes";

fn manifests() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(path(KUBE))
        .expect("deploy/kubernetes")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// `kind` → the one manifest of that kind.
fn manifests_by_kind() -> BTreeMap<String, Value> {
    let mut by_kind = BTreeMap::new();
    for file in manifests() {
        let rel = file.strip_prefix(root()).expect("under the repo");
        for doc in yaml(rel.to_str().expect("utf-8")) {
            let kind = str_at(&doc, "/kind").to_string();
            assert!(by_kind.insert(kind.clone(), doc).is_none(), "two {kind}s");
        }
    }
    by_kind
}

#[test]
fn kubernetes_manifests_pass_strict_validation() {
    let files = manifests();
    let mut args = vec![
        OsStr::new("--strict"),
        OsStr::new("--kubernetes-version"),
        OsStr::new(KUBERNETES_VERSION),
    ];
    args.extend(files.iter().map(|f| f.as_os_str()));
    let out = check(venv_bin("kubernetes-validate"), &args);
    let passed = out.matches(" passed for resource ").count();
    assert_eq!(passed, files.len(), "every manifest validated:\n{out}");
    let kinds: BTreeSet<String> = manifests_by_kind().into_keys().collect();
    for k in [
        "ConfigMap",
        "Deployment",
        "PersistentVolumeClaim",
        "Secret",
        "Service",
    ] {
        assert!(
            kinds.contains(k),
            "deploy/kubernetes lacks a {k}: {kinds:?}"
        );
    }
}

/// The Dockerfile's `USER uid:gid`.
fn image_uid() -> u64 {
    let dockerfile = read("Dockerfile");
    let user = dockerfile
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER line");
    user.split(':')
        .next()
        .and_then(|u| u.trim().parse().ok())
        .expect("numeric uid")
}

#[test]
fn deployment_is_one_hardened_writer() {
    let m = manifests_by_kind();
    let d = &m["Deployment"];
    assert_eq!(d["spec"]["replicas"], 1, "one writer of the SQLite store");
    assert_eq!(str_at(d, "/spec/strategy/type"), "Recreate");
    let pod = &d["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(str_at(c, "/livenessProbe/httpGet/path"), "/livez");
    assert_eq!(str_at(c, "/readinessProbe/httpGet/path"), "/readyz");
    assert_eq!(c["ports"][0]["containerPort"], 9187);
    let sc = &c["securityContext"];
    assert_eq!(pod["securityContext"]["runAsUser"], image_uid());
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    assert!(c["resources"]["requests"]["memory"].is_string());
    assert!(c["resources"]["limits"]["memory"].is_string());
    let mounts: BTreeMap<&str, &Value> = c["volumeMounts"]
        .as_array()
        .expect("volumeMounts")
        .iter()
        .map(|v| (str_at(v, "/mountPath"), v))
        .collect();
    let volumes: BTreeMap<&str, &Value> = pod["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .map(|v| (str_at(v, "/name"), v))
        .collect();
    let data = volumes[str_at(mounts["/var/lib/chops"], "/name")];
    let pvc = str_at(&m["PersistentVolumeClaim"], "/metadata/name");
    assert_eq!(str_at(data, "/persistentVolumeClaim/claimName"), pvc);
    assert_eq!(mounts["/etc/chops"]["readOnly"], true);
    let config = volumes[str_at(mounts["/etc/chops"], "/name")];
    let cm = str_at(&m["ConfigMap"], "/metadata/name");
    assert_eq!(str_at(config, "/configMap/name"), cm);
    let svc = &m["Service"]["spec"];
    assert_eq!(svc["ports"][0]["port"], 9187);
    assert_eq!(svc["selector"], d["spec"]["selector"]["matchLabels"]);
}

/// The ConfigMap's chops.toml, loaded as chops loads its config (mounted at /etc/chops).
fn deployed_config() -> chops::config::Loaded {
    let m = manifests_by_kind();
    let text = str_at(&m["ConfigMap"], "/data/chops.toml");
    chops::config::Loaded::parse("/etc/chops/chops.toml", text)
        .unwrap_or_else(|e| panic!("the ConfigMap's chops.toml is refused: {e}"))
}

/// The ConfigMap's chops.toml is a config chops accepts, its store is on the volume, it listens
/// where the probes knock, and every secret it names comes from the Secret (placeholders only).
#[test]
fn config_map_is_a_valid_chops_config_fed_by_the_secret() {
    let m = manifests_by_kind();
    let text = str_at(&m["ConfigMap"], "/data/chops.toml");
    let loaded = deployed_config();
    assert!(loaded.store_path().starts_with("/var/lib/chops"));
    assert_eq!(loaded.config.http.listen, "0.0.0.0:9187");
    let mut vars = vec![loaded.config.discord.token_env.clone()];
    vars.extend(loaded.config.webhook.iter().map(|w| w.token_env.clone()));
    let raw: toml::Value = toml::from_str(text).expect("TOML");
    for (_, cluster) in raw["clusters"].as_table().expect("clusters") {
        if let Some(v) = cluster.get("password_env").and_then(|v| v.as_str()) {
            vars.push(v.to_string());
        }
    }
    let secret = &m["Secret"];
    let data = secret["stringData"].as_object().expect("stringData");
    for var in &vars {
        let value = data.get(var).and_then(Value::as_str);
        let value = value.unwrap_or_else(|| panic!("the Secret lacks {var}"));
        assert!(
            value.starts_with('<') && value.ends_with('>'),
            "{var}: the example holds a placeholder, not a value"
        );
    }
    let deployment = &m["Deployment"]["spec"]["template"]["spec"]["containers"][0];
    let from = str_at(deployment, "/envFrom/0/secretRef/name");
    assert_eq!(from, str_at(secret, "/metadata/name"));
}

// ---------------------------------------------------------------------------------------------
// systemd

const UNIT: &str = "deploy/systemd/chops.service";

/// The unit with ExecStart's program replaced by the binary just built (verify wants it to exist).
fn unit_for_verify() -> PathBuf {
    let unit = read(UNIT);
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart=");
    let (program, args) = exec.split_once(' ').expect("ExecStart has arguments");
    assert!(
        args.starts_with("serve --config "),
        "ExecStart runs chops serve --config …: {exec}"
    );
    let built = env!("CARGO_BIN_EXE_chops");
    let rewritten = unit.replace(
        &format!("ExecStart={program} "),
        &format!("ExecStart={built} "),
    );
    let dir = scratch("systemd");
    let file = dir.join("chops.service");
    std::fs::write(&file, rewritten).expect("write the unit");
    file
}

#[test]
fn systemd_unit_passes_verify_and_security() {
    let unit = read(UNIT);
    for directive in [
        "DynamicUser=yes",
        "StateDirectory=chops",
        "EnvironmentFile=",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
    ] {
        assert!(
            unit.lines().any(|l| l.starts_with(directive)),
            "{UNIT} lacks {directive}"
        );
    }
    let file = unit_for_verify();
    // verify exits 0 even on unknown keys or bad values (it only prints them): none allowed.
    let out = check("systemd-analyze", &[OsStr::new("verify"), file.as_os_str()]);
    assert!(
        !out.contains("chops.service"),
        "systemd-analyze verify complains:\n{out}"
    );
    let out = check(
        "systemd-analyze",
        &[
            OsStr::new("security"),
            OsStr::new("--offline=true"),
            OsStr::new(&format!("--threshold={SYSTEMD_EXPOSURE_MAX}")),
            file.as_os_str(),
        ],
    );
    assert!(out.contains("Overall exposure level"), "{out}");
    let _ = std::fs::remove_dir_all(file.parent().expect("dir"));
}

// ---------------------------------------------------------------------------------------------
// Grafana

const DASHBOARD: &str = "deploy/grafana/chops.json";

fn dashboard() -> Value {
    serde_json::from_str(&read(DASHBOARD)).expect("the dashboard is JSON")
}

/// Every panel (rows' nested panels too) that queries something.
fn query_panels(d: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().expect("panels") {
        if p["type"] == "row" {
            out.extend(p["panels"].as_array().into_iter().flatten().cloned());
        } else {
            out.push(p.clone());
        }
    }
    out
}

fn exprs(panel: &Value) -> Vec<String> {
    panel["targets"]
        .as_array()
        .expect("targets")
        .iter()
        .map(|t| str_at(t, "/expr").to_string())
        .collect()
}

#[test]
fn dashboard_has_a_panel_per_family_on_the_input_datasource() {
    let d = dashboard();
    let input = d["__inputs"]
        .as_array()
        .expect("__inputs")
        .iter()
        .find(|i| i["name"] == "DS_PROMETHEUS")
        .expect("a DS_PROMETHEUS input");
    assert_eq!(input["type"], "datasource");
    assert_eq!(input["pluginId"], "prometheus");
    let ds = json!({"type": "prometheus", "uid": "${DS_PROMETHEUS}"});
    let panels = query_panels(&d);
    let mut ids = BTreeSet::new();
    for p in d["panels"].as_array().expect("panels") {
        assert!(
            ids.insert(p["id"].as_u64().expect("id")),
            "panel ids unique"
        );
        assert!(p["gridPos"]["w"].is_u64(), "{p}");
    }
    for p in &panels {
        assert_eq!(p["datasource"], ds, "panel {}", p["title"]);
        for t in p["targets"].as_array().expect("targets") {
            assert_eq!(t["datasource"], ds, "a target of {}", p["title"]);
        }
    }
    let used: BTreeSet<String> = panels
        .iter()
        .flat_map(exprs)
        .flat_map(|e| chops_names(&e))
        .collect();
    for (family, kind) in families() {
        let samples = family_samples(&family, &kind);
        assert!(
            samples.iter().any(|s| used.contains(s)),
            "no panel shows the {kind} family {family}"
        );
    }
}

/// The dashboard's queries parse as PromQL: promtool checks them as recording rules, with
/// Grafana's variables replaced by values of their kind.
#[test]
fn dashboard_queries_are_valid_promql() {
    let mut rules = Vec::new();
    for p in query_panels(&dashboard()) {
        for (i, e) in exprs(&p).into_iter().enumerate() {
            let e = e
                .replace("$__rate_interval", "2m")
                .replace("$__range", "6h")
                .replace("$instance", ".*");
            assert!(!e.contains('$'), "an unknown variable in {e}");
            rules.push(json!({"record": format!("dashboard:panel{}_{i}", p["id"]), "expr": e}));
        }
    }
    let n = rules.len();
    let dir = scratch("dashboard-promql");
    let file = dir.join("queries.json");
    write_json(
        &file,
        &json!({"groups": [{"name": "dashboard", "rules": rules}]}),
    );
    let out = check(
        "promtool",
        &[OsStr::new("check"), OsStr::new("rules"), file.as_os_str()],
    );
    assert!(out.contains(&format!("SUCCESS: {n} rules found")), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------
// Names

#[test]
fn every_metric_name_used_is_one_chops_exports() {
    let exported = exported_names();
    let mut used: BTreeMap<String, &str> = BTreeMap::new();
    for r in alert_rules() {
        for n in chops_names(str_at(&r, "/expr")) {
            used.insert(n, RULES);
        }
    }
    for t in one_yaml(RULE_TESTS)["tests"].as_array().expect("tests") {
        for s in t["input_series"].as_array().into_iter().flatten() {
            for n in chops_names(str_at(s, "/series")) {
                used.insert(n, RULE_TESTS);
            }
        }
    }
    for p in query_panels(&dashboard()) {
        for e in exprs(&p) {
            for n in chops_names(&e) {
                used.insert(n, DASHBOARD);
            }
        }
    }
    for family in [
        "chops_incidents_given_up_total",
        "chops_alerts_skipped_total",
        "chops_probe_errors_total",
        "chops_webhook_rejected_total",
    ] {
        assert!(used.contains_key(family), "nothing uses {family}");
    }
    let unknown: Vec<String> = used
        .iter()
        .filter(|(n, _)| !exported.contains(*n))
        .map(|(n, f)| format!("{n} (in {f})"))
        .collect();
    assert!(
        unknown.is_empty(),
        "not in chops' /metrics: {unknown:?}\nexported: {exported:?}"
    );
}
