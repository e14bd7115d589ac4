//! The deployment files (everything under `deploy/`, and `docs/deploy.md`)
//! checked against the server they deploy, as CI can without Docker,
//! Kubernetes or systemd:
//!
//! - every YAML file parses, and every Kubernetes object has an
//!   `apiVersion`, a `kind` and a name; the kustomization's resources exist;
//! - every long option and `FLAGS_*` variable the files name is one that
//!   `flags serve --help` prints, or is listed here as another program's
//!   option ([`OTHER_PROGRAMS_OPTIONS`]) or as a variable the server reads
//!   outside its command line ([`VARIABLES_OUTSIDE_HELP`]);
//! - the manifests' probe paths answer 200 on a running server that has
//!   tokens, and both example configs (`deploy/config/flags.toml` and the
//!   ConfigMap's) pass `flags check`;
//! - the paths agree: the config's directory is what Compose and Kubernetes
//!   mount (a directory, never a `subPath`), the data directory is a volume,
//!   the port is the one exposed, and systemd's directories are the ones
//!   the environment names; stop timeouts outlast the drain.
//!
//! What it is not: proof that Docker, Compose, Kubernetes or systemd accept
//! the files; none of them runs in CI.
//!
//! The checks collect problems (`FILE: what`) instead of stopping at the
//! first, so the tests that break a copy of the files can assert that the
//! check names what was broken.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Options, Server};
use regex::Regex;
use serde::Deserialize as _;
use serde_norway::Value;

const DOCKERFILE: &str = "deploy/Dockerfile";
const COMPOSE: &str = "deploy/compose.yaml";
const KUBERNETES: &str = "deploy/kubernetes";
const KUSTOMIZATION: &str = "deploy/kubernetes/kustomization.yaml";
const UNIT: &str = "deploy/systemd/flags.service";
const EXAMPLE_CONFIG: &str = "deploy/config/flags.toml";
const DOC: &str = "docs/deploy.md";

/// Long options the files name that belong to other programs, by program.
/// Each must be used somewhere and must not be one of `flags serve`'s, so
/// the list cannot hide a misspelt server option for long.
const OTHER_PROGRAMS_OPTIONS: &[(&str, &[&str])] = &[
    ("cargo", &["--release", "--locked", "--test"]),
    ("apt-get", &["--no-install-recommends"]),
    (
        "groupadd, useradd",
        &[
            "--system",
            "--gid",
            "--uid",
            "--home-dir",
            "--no-create-home",
            "--shell",
        ],
    ),
    (
        "docker, docker compose",
        &["--from", "--name", "--rm", "--build"],
    ),
    ("kubectl", &["--from-literal"]),
    ("systemctl", &["--now"]),
];

/// `FLAGS_*` variables `flags serve` reads without clap, so `--help` does
/// not print them: the tokens (`tokens.rs`) and the log level (`lib.rs`).
/// Each must still be a string in the server's source.
const VARIABLES_OUTSIDE_HELP: &[&str] = &["FLAGS_CLIENT_TOKENS", "FLAGS_ADMIN_TOKENS", "FLAGS_LOG"];

#[test]
fn the_deploy_files_agree_with_the_server() {
    let problems = check(&repository());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn an_option_the_server_does_not_have_is_named() {
    let problems = Scratch::new()
        .edit(DOC, "--database-url", "--database-uri")
        .check();
    assert_named(
        &problems,
        DOC,
        "`--database-uri` is not an option of `flags serve`",
    );
}

#[test]
fn a_misspelt_variable_is_named() {
    let problems = Scratch::new()
        .edit(COMPOSE, "FLAGS_DATABASE_URL:", "FLAGS_DATABASE_URI:")
        .check();
    assert_named(
        &problems,
        COMPOSE,
        "`FLAGS_DATABASE_URI` is not a variable `flags serve` reads",
    );
}

#[test]
fn yaml_that_does_not_parse_is_named_with_its_position() {
    let problems = Scratch::new()
        .edit(COMPOSE, "  flags-2:\n", "  flags-2:\n\t")
        .check();
    assert_named(&problems, COMPOSE, "not YAML: ");
    assert_named(&problems, COMPOSE, "line ");
}

#[test]
fn a_kubernetes_object_without_a_name_is_named() {
    let service = "deploy/kubernetes/service.yaml";
    let problems = Scratch::new().edit(service, "  name: flags\n", "").check();
    assert_named(&problems, service, "Service has no metadata.name");
}

#[test]
fn a_probe_path_the_server_does_not_answer_is_named() {
    let deployment = "deploy/kubernetes/deployment.yaml";
    let problems = Scratch::new()
        .edit(deployment, "path: /healthz", "path: /health")
        .check();
    assert_named(
        &problems,
        deployment,
        "livenessProbe GET /health: answered 404",
    );
}

#[test]
fn a_configmap_config_that_flags_check_rejects_is_named() {
    let configmap = "deploy/kubernetes/configmap.yaml";
    let problems = Scratch::new()
        .edit(configmap, "rollout = 25", "rollout = 250")
        .check();
    assert_named(&problems, configmap, "flags check: ");
    assert_named(
        &problems,
        configmap,
        "differs from deploy/config/flags.toml",
    );
}

#[test]
fn a_config_mounted_with_sub_path_is_named() {
    let deployment = "deploy/kubernetes/deployment.yaml";
    let problems = Scratch::new()
        .edit(
            deployment,
            "mountPath: /etc/flags\n",
            "mountPath: /etc/flags/flags.toml\n              subPath: flags.toml\n",
        )
        .check();
    assert_named(&problems, deployment, "`config` is mounted with subPath");
    assert_named(
        &problems,
        deployment,
        "nothing is mounted at /etc/flags, the directory of FLAGS_CONFIG",
    );
}

#[test]
fn a_data_directory_that_is_not_the_volume_is_named() {
    let problems = Scratch::new()
        .edit(
            DOCKERFILE,
            "VOLUME /var/lib/flags",
            "VOLUME /var/lib/flags-data",
        )
        .check();
    assert_named(
        &problems,
        DOCKERFILE,
        "FLAGS_DATA /var/lib/flags is not a VOLUME",
    );
}

#[test]
fn two_replicas_sharing_a_data_volume_are_named() {
    let problems = Scratch::new()
        .edit(
            COMPOSE,
            "- flags-2-data:/var/lib/flags",
            "- flags-1-data:/var/lib/flags",
        )
        .check();
    assert_named(
        &problems,
        COMPOSE,
        "flags-2: data volume flags-1-data is also flags-1's",
    );
}

#[test]
fn a_state_directory_other_than_flags_data_is_named() {
    let problems = Scratch::new()
        .edit(
            UNIT,
            "StateDirectory=flags\n",
            "StateDirectory=flags-server\n",
        )
        .check();
    assert_named(
        &problems,
        UNIT,
        "FLAGS_DATA is /var/lib/flags, not StateDirectory's /var/lib/flags-server",
    );
}

#[test]
fn a_grace_period_shorter_than_the_drain_is_named() {
    let deployment = "deploy/kubernetes/deployment.yaml";
    let problems = Scratch::new()
        .edit(
            deployment,
            "terminationGracePeriodSeconds: 30",
            "terminationGracePeriodSeconds: 5",
        )
        .check();
    assert_named(
        &problems,
        deployment,
        "terminationGracePeriodSeconds (5s) is not longer than --drain-timeout (10s)",
    );
}

/// The repository root: `deploy/` and `docs/` are there.
fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Every problem found in the deployment files under `root`.
fn check(root: &Path) -> Vec<String> {
    let tree = Tree(root.to_path_buf());
    let help = ServeHelp::read();
    let mut problems = Problems::default();
    check_names(&tree, &help, &mut problems);
    let yaml = parse_yaml(&tree, &mut problems);
    let image = Image::parse(&tree.read(DOCKERFILE));
    check_image(&image, &mut problems);
    if let Some([compose]) = yaml.get(COMPOSE).map(Vec::as_slice) {
        check_compose(&tree, compose, &image, &help, &mut problems);
    }
    let manifests: BTreeMap<&str, &[Value]> = yaml
        .iter()
        .filter(|(file, _)| file.starts_with(KUBERNETES))
        .map(|(file, documents)| (file.as_str(), documents.as_slice()))
        .collect();
    let probes = check_kubernetes(&tree, &manifests, &image, &help, &mut problems);
    check_unit(&tree.read(UNIT), &help, &mut problems);
    let example = tree.read(EXAMPLE_CONFIG);
    check_config(EXAMPLE_CONFIG, EXAMPLE_CONFIG, &example, &mut problems);
    check_probes(&example, &probes, &mut problems);
    problems.0
}

/// The problems found so far, each `FILE: what`.
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn add(&mut self, file: &str, what: impl Display) {
        self.0.push(format!("{file}: {what}"));
    }
}

/// The files under check: `deploy/` and `docs/deploy.md` below a root.
struct Tree(PathBuf);

impl Tree {
    fn read(&self, file: &str) -> String {
        let path = self.0.join(file);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn exists(&self, file: &str) -> bool {
        self.0.join(file).exists()
    }

    /// Every file under `deploy/`, and the doc, relative to the root.
    fn files(&self) -> Vec<String> {
        let deploy = files_under(&self.0.join("deploy"));
        let relative = deploy.iter().map(|path| {
            path.strip_prefix(&self.0)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        });
        let mut files: Vec<String> = relative.chain([DOC.to_string()]).collect();
        files.sort();
        files
    }
}

/// Every file below `dir`, at any depth.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

/// What `flags serve --help` says the server accepts.
struct ServeHelp {
    options: BTreeSet<String>,
    variables: BTreeSet<String>,
    drain_timeout: Duration,
}

impl ServeHelp {
    fn read() -> Self {
        let output = common::command()
            .args(["serve", "--help"])
            .output()
            .unwrap();
        assert!(output.status.success(), "flags serve --help: {output:?}");
        let help = String::from_utf8(output.stdout).unwrap();
        let option = Regex::new(r"(?m)^\s+(?:-\w, )?(--[a-z0-9-]+)").unwrap();
        let variable = Regex::new(r"\[env: (FLAGS_[A-Z0-9_]+)=").unwrap();
        let drain = Regex::new(r"--drain-timeout <\w+>\s+[^\n]*\[default: ([^\]]+)\]").unwrap();
        let drain_timeout = &drain.captures(&help).expect("--drain-timeout's default")[1];
        Self {
            options: first_groups(&option, &help),
            variables: first_groups(&variable, &help),
            drain_timeout: flags_core::parse_span(drain_timeout).unwrap(),
        }
    }
}

/// The first group of every match of `pattern` in `text`.
fn first_groups(pattern: &Regex, text: &str) -> BTreeSet<String> {
    pattern
        .captures_iter(text)
        .map(|found| found[1].to_string())
        .collect()
}

/// Every long option and `FLAGS_*` variable named in the files is the
/// server's, or listed as another program's option.
fn check_names(tree: &Tree, help: &ServeHelp, problems: &mut Problems) {
    let option = Regex::new(r"(?:^|[^\w-])(--[a-z][a-z0-9]*(?:-[a-z0-9]+)*)").unwrap();
    let variable = Regex::new(r"\bFLAGS_[A-Z0-9_]*[A-Z0-9]\b").unwrap();
    let others: BTreeSet<&str> = OTHER_PROGRAMS_OPTIONS
        .iter()
        .flat_map(|(_, options)| options.iter().copied())
        .collect();
    let mut used_others = BTreeSet::new();
    for file in tree.files() {
        for (n, line) in tree.read(&file).lines().enumerate() {
            let at = format!("{file}:{}", n + 1);
            for name in first_groups(&option, line) {
                if others.contains(name.as_str()) {
                    used_others.insert(name);
                } else if !help.options.contains(&name) {
                    let what = "is not an option of `flags serve` (its --help), nor listed as another program's";
                    problems.add(&at, format!("`{name}` {what}"));
                }
            }
            for found in variable.find_iter(line) {
                let name = found.as_str();
                if !help.variables.contains(name) && !VARIABLES_OUTSIDE_HELP.contains(&name) {
                    problems.add(
                        &at,
                        format!("`{name}` is not a variable `flags serve` reads"),
                    );
                }
            }
        }
    }
    check_exceptions(help, &others, &used_others, problems);
}

/// The two lists of exceptions still say something true.
fn check_exceptions(
    help: &ServeHelp,
    others: &BTreeSet<&str>,
    used: &BTreeSet<String>,
    problems: &mut Problems,
) {
    let here = "flags-server/tests/deploy.rs";
    for name in others {
        if help.options.contains(*name) {
            problems.add(
                here,
                format!("`{name}` is listed as another program's option but `flags serve` has it"),
            );
        }
        if !used.contains(*name) {
            problems.add(
                here,
                format!("`{name}` is listed as another program's option but no file names it"),
            );
        }
    }
    let source: String = files_under(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"))
        .into_iter()
        .filter(|path| path.extension().is_some_and(|e| e == "rs"))
        .map(|path| std::fs::read_to_string(path).unwrap())
        .collect();
    for name in VARIABLES_OUTSIDE_HELP {
        if !source.contains(&format!("\"{name}\"")) {
            problems.add(here, format!("`{name}` is listed as read by the server, but flags-server/src does not name it"));
        }
    }
}

/// The documents of every YAML file, by file; a file that does not parse
/// is a problem and has no entry.
fn parse_yaml(tree: &Tree, problems: &mut Problems) -> BTreeMap<String, Vec<Value>> {
    let mut parsed = BTreeMap::new();
    for file in tree.files() {
        if !(file.ends_with(".yaml") || file.ends_with(".yml")) {
            continue;
        }
        let text = tree.read(&file);
        // Compose's `<<: *anchor` merges are applied, as Compose does.
        let documents: Result<Vec<Value>, _> = serde_norway::Deserializer::from_str(&text)
            .map(|document| {
                let mut value = Value::deserialize(document)?;
                value.apply_merge()?;
                Ok::<_, serde_norway::Error>(value)
            })
            .collect();
        match documents {
            Ok(documents) => {
                parsed.insert(file, documents);
            }
            Err(e) => problems.add(&file, format!("not YAML: {e}")),
        }
    }
    parsed
}

/// The elements of a YAML sequence; none if `value` is not one.
fn items(value: &Value) -> impl Iterator<Item = &Value> {
    value.as_sequence().into_iter().flatten()
}

/// The string at `value`, or "" if it is not one.
fn text(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}

/// Variables by name.
type Env = BTreeMap<String, String>;

/// The value of `name` in `env`, or "" if unset.
fn var<'a>(env: &'a Env, name: &str) -> &'a str {
    env.get(name).map_or("", String::as_str)
}

/// The port of an `IP:PORT` address.
fn port_of(address: &str) -> &str {
    address.rsplit_once(':').map_or("", |(_, port)| port)
}

/// The directory of a path, as written.
fn parent_of(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(dir, _)| dir)
}

/// The last part of a path.
fn file_name_of(path: &str) -> &str {
    path.rsplit_once('/').map_or(path, |(_, name)| name)
}

/// What the Dockerfile's runtime stage sets.
#[derive(Default)]
struct Image {
    env: Env,
    volumes: Vec<String>,
    exposed: Vec<String>,
}

impl Image {
    fn parse(dockerfile: &str) -> Self {
        let mut image = Image::default();
        for instruction in instructions(dockerfile) {
            let mut words = instruction.split_whitespace();
            let (Some(keyword), arguments) = (words.next(), words) else {
                continue;
            };
            match keyword {
                "ENV" => image.env.extend(arguments.filter_map(|pair| {
                    let (name, value) = pair.split_once('=')?;
                    Some((name.to_string(), value.to_string()))
                })),
                "VOLUME" => image.volumes.extend(arguments.map(String::from)),
                "EXPOSE" => image.exposed.extend(arguments.map(String::from)),
                _ => {}
            }
        }
        image
    }
}

/// A Dockerfile's instructions, continuation lines joined, comments out.
fn instructions(dockerfile: &str) -> Vec<String> {
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in dockerfile.lines().map(str::trim) {
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(start) => current.push_str(start),
            None => {
                current.push_str(line);
                instructions.push(std::mem::take(&mut current));
            }
        }
        current.push(' ');
    }
    instructions
}

/// The image serves a config, keeps its data in a volume and exposes the
/// port it listens on.
fn check_image(image: &Image, problems: &mut Problems) {
    for name in ["FLAGS_CONFIG", "FLAGS_DATA", "FLAGS_ADDR"] {
        if !image.env.contains_key(name) {
            problems.add(DOCKERFILE, format!("sets no {name}"));
        }
    }
    let data = var(&image.env, "FLAGS_DATA");
    if !image.volumes.iter().any(|volume| volume == data) {
        problems.add(DOCKERFILE, format!("FLAGS_DATA {data} is not a VOLUME"));
    }
    let address = var(&image.env, "FLAGS_ADDR");
    if !image.exposed.iter().any(|port| port == port_of(address)) {
        problems.add(
            DOCKERFILE,
            format!("FLAGS_ADDR {address}: its port is not EXPOSEd"),
        );
    }
}

/// A stop timeout (`30`, `30s`) is longer than the server's drain.
fn check_grace(file: &str, what: &str, grace: &str, help: &ServeHelp, problems: &mut Problems) {
    let drain = help.drain_timeout;
    match flags_core::parse_span(grace) {
        Some(grace) if grace > drain => {}
        Some(grace) => problems.add(
            file,
            format!("{what} ({grace:?}) is not longer than --drain-timeout ({drain:?})"),
        ),
        None => problems.add(file, format!("{what} `{grace}` is not a duration")),
    }
}

/// The services built from the Dockerfile are at least two replicas, each
/// as [`Replica::check`] says.
fn check_compose(
    tree: &Tree,
    compose: &Value,
    image: &Image,
    help: &ServeHelp,
    problems: &mut Problems,
) {
    let Some(services) = compose["services"].as_mapping() else {
        return problems.add(COMPOSE, "no services");
    };
    let replicas: Vec<Replica> = services
        .iter()
        .filter(|(_, service)| service["build"]["dockerfile"] == DOCKERFILE)
        .map(|(name, service)| Replica::new(text(name), service, image))
        .collect();
    if replicas.len() < 2 {
        let what = format!(
            "{} services are built from {DOCKERFILE}, not 2 or more",
            replicas.len()
        );
        problems.add(COMPOSE, what);
    }
    let mut data_volumes = BTreeMap::new();
    for replica in &replicas {
        replica.check(tree, services, &mut data_volumes, help, problems);
    }
}

/// A Compose service running the image.
struct Replica<'a> {
    name: &'a str,
    service: &'a Value,
    /// The image's variables, then the service's.
    env: Env,
    /// Its volumes, `SOURCE:TARGET[:MODE]` split.
    volumes: Vec<(&'a str, &'a str, &'a str)>,
}

impl<'a> Replica<'a> {
    fn new(name: &'a str, service: &'a Value, image: &Image) -> Self {
        let mut env = image.env.clone();
        for (variable, value) in service["environment"].as_mapping().into_iter().flatten() {
            env.insert(text(variable).to_string(), text(value).to_string());
        }
        let volumes = items(&service["volumes"])
            .filter_map(|volume| {
                let mut parts = volume.as_str()?.splitn(3, ':');
                Some((parts.next()?, parts.next()?, parts.next().unwrap_or("")))
            })
            .collect();
        Self {
            name,
            service,
            env,
            volumes,
        }
    }

    fn problem(&self, problems: &mut Problems, what: impl Display) {
        problems.add(COMPOSE, format!("{}: {what}", self.name));
    }

    /// The volume mounted at `target`: its source and mode.
    fn volume_at(&self, target: &str) -> Option<(&'a str, &'a str)> {
        let found = self.volumes.iter().find(|(_, at, _)| *at == target);
        found.map(|(source, _, mode)| (*source, *mode))
    }

    /// It mounts a config directory, has a data volume that no other
    /// replica uses (`data_volumes`: volume to replica), publishes its port,
    /// waits for healthy dependencies and gives the drain its time.
    fn check(
        &self,
        tree: &Tree,
        services: &serde_norway::Mapping,
        data_volumes: &mut BTreeMap<&'a str, &'a str>,
        help: &ServeHelp,
        problems: &mut Problems,
    ) {
        self.check_config_directory(tree, problems);
        let data = var(&self.env, "FLAGS_DATA");
        match self.volume_at(data) {
            None => self.problem(problems, format!("no volume at FLAGS_DATA {data}")),
            Some((source, _)) => {
                if let Some(other) = data_volumes.insert(source, self.name) {
                    let what = format!(
                        "data volume {source} is also {other}'s (one `flags serve` per data directory)"
                    );
                    self.problem(problems, what);
                }
            }
        }
        let port = port_of(var(&self.env, "FLAGS_ADDR"));
        let published = items(&self.service["ports"]).map(text);
        if !published
            .into_iter()
            .any(|published| port_of(published) == port)
        {
            self.problem(
                problems,
                format!("publishes no port to {port}, the port of FLAGS_ADDR"),
            );
        }
        self.check_dependencies(services, problems);
        // Compose's default stop_grace_period is 10 s.
        let grace = self.service["stop_grace_period"].as_str().unwrap_or("10s");
        let what = format!("{}: stop_grace_period", self.name);
        check_grace(COMPOSE, &what, grace, help, problems);
    }

    /// The directory of FLAGS_CONFIG is a directory of `deploy/` holding
    /// the config, mounted read-only.
    fn check_config_directory(&self, tree: &Tree, problems: &mut Problems) {
        let config = var(&self.env, "FLAGS_CONFIG");
        let Some((source, mode)) = self.volume_at(parent_of(config)) else {
            let what = format!(
                "nothing is mounted at {}, the directory of FLAGS_CONFIG",
                parent_of(config)
            );
            return self.problem(problems, what);
        };
        let name = file_name_of(config);
        if !tree.exists(&format!(
            "deploy/{}/{name}",
            source.trim_start_matches("./")
        )) {
            self.problem(problems, format!("{source} holds no {name}"));
        }
        if !mode.split(',').any(|option| option == "ro") {
            self.problem(
                problems,
                "the config directory is not mounted read-only (:ro)",
            );
        }
    }

    /// It starts after its dependencies are healthy, which needs each to
    /// have a healthcheck.
    fn check_dependencies(&self, services: &serde_norway::Mapping, problems: &mut Problems) {
        for (dependency, how) in self.service["depends_on"]
            .as_mapping()
            .into_iter()
            .flatten()
        {
            let dependency = text(dependency);
            if how["condition"] != "service_healthy" {
                self.problem(
                    problems,
                    format!("depends on {dependency} without condition: service_healthy"),
                );
            }
            if services
                .get(dependency)
                .is_none_or(|d| d["healthcheck"].is_null())
            {
                self.problem(
                    problems,
                    format!("depends on {dependency}, which has no healthcheck"),
                );
            }
        }
    }
}

/// A probe a manifest declares.
struct Probe {
    file: String,
    which: &'static str,
    path: String,
}

/// The Kubernetes objects are named and listed by the kustomization, and
/// each Deployment gives the drain its time and agrees with them as
/// [`Pod::check_container`] says; returns the probes.
fn check_kubernetes(
    tree: &Tree,
    manifests: &BTreeMap<&str, &[Value]>,
    image: &Image,
    help: &ServeHelp,
    problems: &mut Problems,
) -> Vec<Probe> {
    let objects: Vec<(&str, &Value)> = manifests
        .iter()
        .flat_map(|(file, documents)| documents.iter().map(move |d| (*file, d)))
        .collect();
    for (file, object) in &objects {
        check_object(file, object, problems);
    }
    check_kustomization(tree, manifests, problems);
    let mut probes = Vec::new();
    for (file, deployment) in objects.iter().filter(|(_, o)| o["kind"] == "Deployment") {
        let spec = &deployment["spec"]["template"]["spec"];
        // Kubernetes' default grace period is 30 s.
        let grace = spec["terminationGracePeriodSeconds"].as_u64().unwrap_or(30);
        check_grace(
            file,
            "terminationGracePeriodSeconds",
            &grace.to_string(),
            help,
            problems,
        );
        let pod = Pod {
            file,
            spec,
            objects: &objects,
            tree,
        };
        for container in items(&spec["containers"]) {
            probes.extend(pod.check_container(container, image, problems));
        }
    }
    probes
}

/// An object says what it is and is named; a kustomization needs no name.
fn check_object(file: &str, object: &Value, problems: &mut Problems) {
    let kind = text(&object["kind"]);
    if text(&object["apiVersion"]).is_empty() || kind.is_empty() {
        problems.add(file, "an object without apiVersion or kind");
    } else if kind != "Kustomization" && text(&object["metadata"]["name"]).is_empty() {
        problems.add(file, format!("{kind} has no metadata.name"));
    }
}

/// The kustomization lists files that exist: every manifest but the
/// examples (applying the Secret's would overwrite the real Secret).
fn check_kustomization(tree: &Tree, manifests: &BTreeMap<&str, &[Value]>, problems: &mut Problems) {
    let Some([kustomization]) = manifests.get(KUSTOMIZATION).copied() else {
        return problems.add(KUSTOMIZATION, "missing, or not one document");
    };
    let resources: BTreeSet<String> = items(&kustomization["resources"])
        .map(|resource| format!("{KUBERNETES}/{}", text(resource)))
        .collect();
    for resource in resources.iter().filter(|resource| !tree.exists(resource)) {
        problems.add(
            KUSTOMIZATION,
            format!("lists {resource}, which does not exist"),
        );
    }
    for file in manifests.keys().filter(|file| **file != KUSTOMIZATION) {
        let listed = resources.contains(*file);
        let example = file.ends_with(".example.yaml");
        if !listed && !example {
            problems.add(KUSTOMIZATION, format!("does not list {file}"));
        }
        if listed && example {
            problems.add(
                KUSTOMIZATION,
                format!("lists {file}: applying it would overwrite the real object"),
            );
        }
    }
}

/// A Deployment's pod spec, with the objects its containers refer to.
struct Pod<'a> {
    file: &'a str,
    spec: &'a Value,
    objects: &'a [(&'a str, &'a Value)],
    tree: &'a Tree,
}

impl Pod<'_> {
    /// The object of `kind` named `name`, and its file.
    fn object(&self, kind: &str, name: &str) -> Option<(&str, &Value)> {
        let found = self
            .objects
            .iter()
            .find(|(_, o)| o["kind"] == kind && o["metadata"]["name"] == name);
        found.map(|(file, object)| (*file, *object))
    }

    /// The pod's volume named `name`.
    fn volume(&self, name: &str) -> &Value {
        let found = items(&self.spec["volumes"]).find(|volume| volume["name"] == name);
        found.unwrap_or(&Value::Null)
    }

    /// The container's variables refer to keys of the example Secret, its
    /// config is a ConfigMap mounted as [`Pod::check_config_mount`] says,
    /// its data directory is a volume, and its port and probes are the
    /// server's; returns the probes.
    fn check_container(
        &self,
        container: &Value,
        image: &Image,
        problems: &mut Problems,
    ) -> Vec<Probe> {
        let env = self.container_env(container, image, problems);
        let mounts: Vec<&Value> = items(&container["volumeMounts"]).collect();
        self.check_config_mount(&env, &mounts, problems);
        let data = var(&env, "FLAGS_DATA");
        if !mounts.iter().any(|mount| mount["mountPath"] == data) {
            problems.add(
                self.file,
                format!("no volume is mounted at FLAGS_DATA {data}"),
            );
        }
        let port = port_of(var(&env, "FLAGS_ADDR"));
        let ports: Vec<&Value> = items(&container["ports"]).collect();
        let numbers = ports.iter().filter_map(|p| p["containerPort"].as_u64());
        if !numbers.into_iter().any(|number| number.to_string() == port) {
            problems.add(
                self.file,
                format!("no containerPort is {port}, the port of FLAGS_ADDR"),
            );
        }
        self.probes(container, &ports, problems)
    }

    /// The image's variables, then the container's; each secretKeyRef
    /// names a key of the example Secret.
    fn container_env(&self, container: &Value, image: &Image, problems: &mut Problems) -> Env {
        let mut env = image.env.clone();
        for variable in items(&container["env"]) {
            let name = text(&variable["name"]);
            let secret = &variable["valueFrom"]["secretKeyRef"];
            if let Some(value) = variable["value"].as_str() {
                env.insert(name.to_string(), value.to_string());
            } else if !secret.is_null() {
                self.check_secret_ref(name, secret, problems);
            }
        }
        env
    }

    fn check_secret_ref(&self, variable: &str, reference: &Value, problems: &mut Problems) {
        let (name, key) = (text(&reference["name"]), text(&reference["key"]));
        let found = self.object("Secret", name).is_some_and(|(_, secret)| {
            !secret["stringData"][key].is_null() || !secret["data"][key].is_null()
        });
        if !found {
            let what = format!(
                "{variable} reads key `{key}` of Secret `{name}`, which no example Secret has"
            );
            problems.add(self.file, what);
        }
    }

    /// The directory of FLAGS_CONFIG is a ConfigMap of these files mounted
    /// whole (a subPath mount never sees the ConfigMap's updates), whose
    /// config `flags check` accepts and is the example config.
    fn check_config_mount(&self, env: &Env, mounts: &[&Value], problems: &mut Problems) {
        let config = var(env, "FLAGS_CONFIG");
        let (dir, name) = (parent_of(config), file_name_of(config));
        for mount in mounts.iter().filter(|mount| !mount["subPath"].is_null()) {
            let volume = text(&mount["name"]);
            if !self.volume(volume)["configMap"].is_null() {
                let what = format!(
                    "ConfigMap volume `{volume}` is mounted with subPath, which never sees the ConfigMap's updates: mount the directory"
                );
                problems.add(self.file, what);
            }
        }
        let whole = mounts
            .iter()
            .find(|m| m["mountPath"] == dir && m["subPath"].is_null());
        let Some(mount) = whole else {
            let what = format!("nothing is mounted at {dir}, the directory of FLAGS_CONFIG");
            return problems.add(self.file, what);
        };
        let map_name = text(&self.volume(text(&mount["name"]))["configMap"]["name"]);
        let Some((file, map)) = self.object("ConfigMap", map_name) else {
            return problems.add(
                self.file,
                format!("{dir} is not a ConfigMap of these files"),
            );
        };
        let Some(config) = map["data"][name].as_str() else {
            return problems.add(
                file,
                format!("has no key {name}, the file name of FLAGS_CONFIG"),
            );
        };
        check_config(file, &format!("its {name}"), config, problems);
        if config != self.tree.read(EXAMPLE_CONFIG) {
            let what = format!(
                "its {name} differs from {EXAMPLE_CONFIG}, which docs/deploy.md says it holds"
            );
            problems.add(file, what);
        }
    }

    /// The liveness and readiness probes, each a GET on a port of the
    /// container.
    fn probes(&self, container: &Value, ports: &[&Value], problems: &mut Problems) -> Vec<Probe> {
        let mut probes = Vec::new();
        for which in ["livenessProbe", "readinessProbe"] {
            let get = &container[which]["httpGet"];
            let Some(path) = get["path"].as_str() else {
                problems.add(self.file, format!("no {which} httpGet path"));
                continue;
            };
            if !ports
                .iter()
                .any(|p| p["name"] == get["port"] || p["containerPort"] == get["port"])
            {
                problems.add(
                    self.file,
                    format!("{which}'s port is not a port of the container"),
                );
            }
            let file = self.file.to_string();
            probes.push(Probe {
                file,
                which,
                path: path.to_string(),
            });
        }
        probes
    }
}

/// `flags check` accepts `text`, the config `name` of `file` (named so
/// in what `flags check` says).
fn check_config(file: &str, name: &str, text: &str, problems: &mut Problems) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flags.toml");
    std::fs::write(&path, text).unwrap();
    let output = common::command().arg("check").arg(&path).output().unwrap();
    if !output.status.success() {
        let said = String::from_utf8_lossy(&output.stderr)
            .trim()
            .replace(&path.display().to_string(), name)
            .replace('\n', "; ");
        problems.add(file, format!("flags check: {said}"));
    }
}

/// The unit's directories are those its environment names, it runs
/// `flags serve`, and it gives the drain its time.
fn check_unit(unit: &str, help: &ServeHelp, problems: &mut Problems) {
    let settings: Vec<(&str, &str)> = unit
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .collect();
    let setting = |key: &str| {
        settings
            .iter()
            .find(|(k, _)| *k == key)
            .map_or("(unset)", |(_, v)| *v)
    };
    let env: BTreeMap<&str, &str> = settings
        .iter()
        .filter(|(key, _)| *key == "Environment")
        .filter_map(|(_, assignment)| assignment.split_once('='))
        .collect();
    let variable = |name: &str| env.get(name).copied().unwrap_or("(unset)");
    let (data, state) = (
        variable("FLAGS_DATA"),
        format!("/var/lib/{}", setting("StateDirectory")),
    );
    if data != state {
        problems.add(
            UNIT,
            format!("FLAGS_DATA is {data}, not StateDirectory's {state}"),
        );
    }
    let config = variable("FLAGS_CONFIG");
    let configuration = format!("/etc/{}", setting("ConfigurationDirectory"));
    if parent_of(config) != configuration {
        problems.add(
            UNIT,
            format!("FLAGS_CONFIG {config} is not in ConfigurationDirectory's {configuration}"),
        );
    }
    if !setting("ExecStart").ends_with(" serve") {
        problems.add(UNIT, "ExecStart does not run `flags serve`");
    }
    // systemd's default TimeoutStopSec is 90 s.
    let stop = settings
        .iter()
        .find(|(k, _)| *k == "TimeoutStopSec")
        .map_or("90s", |(_, v)| *v);
    check_grace(UNIT, "TimeoutStopSec", stop, help, problems);
}

/// Every probe path answers 200 on a server configured like the
/// deployment: the example config, and tokens (a path that needs one would
/// fail the probe, which sends none).
fn check_probes(config: &str, probes: &[Probe], problems: &mut Problems) {
    let options = Options::default()
        .env("FLAGS_CLIENT_TOKENS", "probe-client")
        .env("FLAGS_ADMIN_TOKENS", "probe-admin");
    let server = Server::start_with(config, options);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for Probe { file, which, path } in probes {
        let status = runtime.block_on(server.get(path)).status();
        if status != 200 {
            problems.add(
                file,
                format!("{which} GET {path}: answered {}", status.as_u16()),
            );
        }
    }
}

/// A copy of the deployment files in a temporary root, to break.
struct Scratch(tempfile::TempDir);

impl Scratch {
    fn new() -> Self {
        let scratch = Scratch(tempfile::tempdir().unwrap());
        let source = Tree(repository());
        for file in source.files() {
            let target = scratch.0.path().join(&file);
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::write(target, source.read(&file)).unwrap();
        }
        scratch
    }

    /// Replaces `old` (which must be there) by `new` in `file`.
    fn edit(&self, file: &str, old: &str, new: &str) -> &Self {
        let path = self.0.path().join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(old), "{file} has no {old:?} to replace");
        std::fs::write(path, text.replace(old, new)).unwrap();
        self
    }

    /// The problems the check finds in the copy.
    fn check(&self) -> Vec<String> {
        check(self.0.path())
    }
}

/// One of `problems` is `file`'s and says `what`.
fn assert_named(problems: &[String], file: &str, what: &str) {
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with(file) && p.contains(what)),
        "no problem of {file} says {what:?}; found:\n{}",
        problems.join("\n")
    );
}
