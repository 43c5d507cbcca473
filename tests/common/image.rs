//! The Docker image as its Dockerfile describes it (runtime stage: ENV, ENTRYPOINT, CMD,
//! HEALTHCHECK, COPY), turned into processes here: there is no Docker daemon in the tests,
//! but the image's command line, environment and files can run outside it.

use std::path::Path;
use std::process::Command;

/// What the Dockerfile says the image runs, read from the Dockerfile itself.
pub struct Image {
    pub env: Vec<(String, String)>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub healthcheck: Vec<String>,
    /// `COPY` sources (in the repository) and their places in the image.
    pub copies: Vec<(String, String)>,
}

pub fn image() -> Image {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("Dockerfile")).unwrap();
    // The runtime stage only: everything after the last FROM.
    let stage = text.rsplit("\nFROM ").next().unwrap().replace("\\\n", " ");
    let json = |s: &str| -> Vec<String> { serde_json::from_str(s.trim()).unwrap() };
    let mut image = Image {
        env: Vec::new(),
        entrypoint: Vec::new(),
        cmd: Vec::new(),
        healthcheck: Vec::new(),
        copies: Vec::new(),
    };
    for line in stage.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("ENV ") {
            for pair in rest.split_whitespace() {
                let (k, v) = pair.split_once('=').expect("ENV K=V");
                image.env.push((k.to_owned(), v.to_owned()));
            }
        } else if let Some(rest) = line.strip_prefix("ENTRYPOINT ") {
            image.entrypoint = json(rest);
        } else if let Some(rest) = line.strip_prefix("CMD ") {
            image.cmd = json(rest);
        } else if let Some(rest) = line.strip_prefix("HEALTHCHECK ") {
            image.healthcheck = json(rest.split_once(" CMD ").expect("HEALTHCHECK … CMD").1);
        } else if let Some(rest) = line.strip_prefix("COPY ") {
            let parts: Vec<&str> = rest.split_whitespace().collect();
            if !parts[0].starts_with("--from") {
                image
                    .copies
                    .push((parts[0].to_owned(), parts[1].to_owned()));
            }
        }
    }
    image
}

impl Image {
    /// `text` with the image's paths replaced by where they come from in the repository.
    pub fn local(&self, text: &str) -> String {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut out = text.to_owned();
        for (from, to) in &self.copies {
            out = out.replace(to, &root.join(from).display().to_string());
        }
        out
    }

    /// The image's command line `args` as a process here: the binary under test, the image's
    /// environment with `overrides` (what `docker run -e` gives), as uid 10001 when we are
    /// root (the image's USER).
    pub fn command(&self, args: &[String], overrides: &[(&str, String)]) -> Command {
        assert_eq!(args[0], "/usr/local/bin/oauthgate", "{args:?}");
        let mut cmd = if is_root() {
            let mut c = Command::new("setpriv");
            c.args([
                "--reuid=10001",
                "--regid=10001",
                "--clear-groups",
                super::bin(),
            ]);
            c
        } else {
            Command::new(super::bin())
        };
        cmd.args(args[1..].iter().map(|a| self.local(a)));
        cmd.env_clear().env("PATH", "/usr/bin:/bin");
        for (k, v) in &self.env {
            cmd.env(k, self.local(v));
        }
        for (k, v) in overrides {
            cmd.env(k, v);
        }
        cmd
    }
}

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl Image {
    pub fn env_value(&self, key: &str) -> &str {
        self.env
            .iter()
            .find(|(k, _)| k == key)
            .map_or("", |(_, v)| v.as_str())
    }
}
