//! Independent verifiers in Python (PyJWT, PyNaCl), installed by the harness itself into a
//! virtual environment under `target/tmp`, once per requirements file.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The venv's python, with `tests/requirements.txt` installed.
pub fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let requirements = root().join("tests/requirements.txt");
        let wanted = std::fs::read_to_string(&requirements).expect("tests/requirements.txt");
        let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pyenv");
        std::fs::create_dir_all(&venv).expect("venv dir");
        // Several test binaries may get here at once: one installs, the others wait.
        let lock = File::create(venv.with_extension("lock")).expect("lock file");
        lock.lock().expect("lock");
        let marker = venv.join("installed-requirements.txt");
        let python = venv.join("bin/python");
        if std::fs::read_to_string(&marker).ok().as_deref() != Some(wanted.as_str()) {
            run(Command::new("python3").arg("-m").arg("venv").arg(&venv));
            run(Command::new(&python)
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "-r",
                ])
                .arg(&requirements));
            std::fs::write(&marker, &wanted).expect("marker");
        }
        python
    })
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `tests/python/<script>` with `args`; returns (success, stdout, stderr).
pub fn script(script: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(python())
        .arg(root().join("tests/python").join(script))
        .args(args)
        .output()
        .expect("run python");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
