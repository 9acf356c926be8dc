//! Reports as JSON lines on stdout and, optionally, the latest status in a file that other tools
//! poll (written to a temporary file and renamed, so readers never see half a document).

use std::io::Write as _;
use std::path::PathBuf;

use serde::Serialize;
use tracing::warn;

use crate::status::{BatchReport, MappingStatus, Reporter};

pub struct JsonLinesReporter {
    status_file: Option<PathBuf>,
    print_status: bool,
}

impl JsonLinesReporter {
    pub fn new(status_file: Option<PathBuf>, print_status: bool) -> Self {
        Self {
            status_file,
            print_status,
        }
    }

    fn line<T: Serialize>(kind: &str, value: &T) {
        let line = serde_json::json!({ "type": kind, "data": value });
        let mut out = std::io::stdout().lock();
        // A closed stdout must not stop the mapping.
        let _ = writeln!(out, "{line}");
    }
}

impl Reporter for JsonLinesReporter {
    fn batch(&mut self, report: &BatchReport) {
        Self::line("batch", report);
    }

    fn status(&mut self, status: &MappingStatus) {
        if self.print_status {
            Self::line("status", status);
        }
        if let Some(path) = &self.status_file {
            let tmp = path.with_extension("tmp");
            let written = serde_json::to_vec_pretty(status)
                .map_err(std::io::Error::other)
                .and_then(|bytes| std::fs::write(&tmp, bytes))
                .and_then(|()| std::fs::rename(&tmp, path));
            if let Err(error) = written {
                warn!(%error, path = %path.display(), "cannot write the status file");
            }
        }
    }
}
