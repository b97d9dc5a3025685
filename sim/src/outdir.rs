//! Result folders that are complete or absent.
//!
//! A run's files ([`RUN_FILES`], written by `report::write_dir`) go to a staging folder beside the requested one
//! (`.NAME.duet-tmp-PID`), created before the run starts, so an unwritable place fails before any simulation.
//! [`Staged::commit`] renames the staging folder into place when every file is written; a run that stops early
//! (an error, Ctrl-C, a kill) leaves at most the staging folder, never a half-written `NAME`. A folder that holds
//! another run's files is refused unless `overwrite`, which removes only those files (anything else in the folder
//! stays). When the folder holds other files, the run's files are moved in one by one, `summary.json` last, so a
//! `summary.json` there still means a complete run.

use std::path::{Path, PathBuf};

/// The files a run writes into its folder; the only ones `overwrite` removes.
pub const RUN_FILES: &[&str] = &[
    "summary.json",
    "requests.csv",
    "decisions.csv",
    "iterations.csv",
    "transfers.csv",
    // `duet replay --dry-run` adds these.
    "steps.csv",
    "replay.json",
];

/// Why a result folder cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OutDirError {
    /// The folder holds another run's files and `overwrite` was not given.
    #[error(
        "{dir} already holds a run's results ({files}): pass --overwrite to replace them (only duet's own files are \
         removed), or choose another folder"
    )]
    Occupied {
        /// The folder.
        dir: PathBuf,
        /// Its run files, comma-separated.
        files: String,
    },
    /// The path exists and is not a folder.
    #[error("{0} exists and is not a folder")]
    NotAFolder(PathBuf),
    /// A file-system operation failed.
    #[error("{what} {path}: {cause}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// On which path.
        path: PathBuf,
        /// The error.
        cause: std::io::Error,
    },
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> OutDirError {
    let path = path.to_path_buf();
    move |cause| OutDirError::Io { what, path, cause }
}

/// A staging folder for one run's results.
#[derive(Debug)]
pub struct Staged {
    dir: PathBuf,
    tmp: PathBuf,
    overwrite: bool,
    done: bool,
}

/// The run files present in `dir` (sorted).
fn run_files_in(dir: &Path) -> Vec<&'static str> {
    RUN_FILES.iter().copied().filter(|f| dir.join(f).exists()).collect()
}

impl Staged {
    /// Checks `dir` (refused if it holds another run's files, unless `overwrite`) and creates the staging folder
    /// beside it.
    pub fn begin(dir: &Path, overwrite: bool) -> Result<Staged, OutDirError> {
        if dir.exists() {
            if !dir.is_dir() {
                return Err(OutDirError::NotAFolder(dir.to_path_buf()));
            }
            let present = run_files_in(dir);
            if !present.is_empty() && !overwrite {
                return Err(OutDirError::Occupied { dir: dir.to_path_buf(), files: present.join(", ") });
            }
        }
        let name = dir.file_name().map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned());
        let parent = match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent).map_err(io("creating", &parent))?;
        let tmp = parent.join(format!(".{name}.duet-tmp-{}", std::process::id()));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(io("removing the stale staging folder", &tmp))?;
        }
        std::fs::create_dir(&tmp).map_err(io("creating the staging folder", &tmp))?;
        Ok(Staged { dir: dir.to_path_buf(), tmp, overwrite, done: false })
    }

    /// Where to write the run's files.
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// Moves the written files into place: the staging folder is renamed to the folder when that is absent or
    /// (after removing a previous run's files with `overwrite`) empty, else its files are moved in,
    /// `summary.json` last.
    pub fn commit(mut self) -> Result<(), OutDirError> {
        if self.dir.exists() {
            if self.overwrite {
                for f in run_files_in(&self.dir) {
                    let p = self.dir.join(f);
                    std::fs::remove_file(&p).map_err(io("removing", &p))?;
                }
            }
            let empty = std::fs::read_dir(&self.dir).map_err(io("reading", &self.dir))?.next().is_none();
            if empty {
                std::fs::remove_dir(&self.dir).map_err(io("removing the empty folder", &self.dir))?;
            }
        }
        if !self.dir.exists() {
            std::fs::rename(&self.tmp, &self.dir).map_err(io("renaming the staging folder to", &self.dir))?;
        } else {
            let mut files: Vec<PathBuf> = std::fs::read_dir(&self.tmp)
                .map_err(io("reading", &self.tmp))?
                .map(|e| e.map(|e| e.path()))
                .collect::<Result<_, _>>()
                .map_err(io("reading", &self.tmp))?;
            // summary.json last: its presence means the rest is in place.
            files.sort_by_key(|p| (p.file_name().is_some_and(|n| n == "summary.json"), p.clone()));
            for f in files {
                let to = self.dir.join(f.file_name().expect("read_dir entries have names"));
                std::fs::rename(&f, &to).map_err(io("moving a result into", &to))?;
            }
            std::fs::remove_dir(&self.tmp).map_err(io("removing the staging folder", &self.tmp))?;
        }
        self.done = true;
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("duet-outdir-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn write_run(s: &Staged, tag: &str) {
        for f in ["summary.json", "requests.csv", "iterations.csv"] {
            std::fs::write(s.path().join(f), tag).unwrap();
        }
    }

    #[test]
    fn a_new_folder_appears_only_at_commit() {
        let root = scratch("new");
        let out = root.join("a/b/out");
        let s = Staged::begin(&out, false).unwrap();
        write_run(&s, "1");
        assert!(!out.exists(), "nothing in place before commit");
        s.commit().unwrap();
        assert_eq!(std::fs::read_to_string(out.join("summary.json")).unwrap(), "1");
        // No staging folder left beside it.
        let left: Vec<_> = std::fs::read_dir(out.parent().unwrap()).unwrap().collect();
        assert_eq!(left.len(), 1);
    }

    #[test]
    fn a_dropped_run_leaves_nothing() {
        let root = scratch("drop");
        let out = root.join("out");
        {
            let s = Staged::begin(&out, false).unwrap();
            write_run(&s, "1");
        }
        assert!(!out.exists());
        assert_eq!(std::fs::read_dir(&root).unwrap().count(), 0);
    }

    #[test]
    fn another_runs_folder_is_refused_unless_overwrite_which_keeps_foreign_files() {
        let root = scratch("occupied");
        let out = root.join("out");
        std::fs::create_dir_all(&out).unwrap();
        for f in ["summary.json", "transfers.csv", "notes.txt"] {
            std::fs::write(out.join(f), "old").unwrap();
        }
        let e = Staged::begin(&out, false).unwrap_err().to_string();
        assert!(e.contains("already holds a run's results (summary.json, transfers.csv)") && e.contains("--overwrite"));
        let s = Staged::begin(&out, true).unwrap();
        write_run(&s, "new");
        s.commit().unwrap();
        assert_eq!(std::fs::read_to_string(out.join("summary.json")).unwrap(), "new");
        assert!(!out.join("transfers.csv").exists(), "the old run's file that the new run does not write is gone");
        assert_eq!(std::fs::read_to_string(out.join("notes.txt")).unwrap(), "old");
    }

    #[test]
    fn an_empty_or_foreign_folder_is_used_and_a_file_is_refused() {
        let root = scratch("empty");
        let out = root.join("out");
        std::fs::create_dir_all(&out).unwrap();
        let s = Staged::begin(&out, false).unwrap();
        write_run(&s, "1");
        s.commit().unwrap();
        assert!(out.join("iterations.csv").exists());
        let file = root.join("f");
        std::fs::write(&file, "x").unwrap();
        assert!(Staged::begin(&file, false).unwrap_err().to_string().contains("is not a folder"));
    }
}
