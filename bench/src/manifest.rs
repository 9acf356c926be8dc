//! The event files of one bench run and what they hold, so every figure (and the Python
//! baseline) reads the same bytes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub const MANIFEST_FILE: &str = "manifest.json";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventFile {
    /// `sensors-10k` or `batch-6mb`.
    pub batch: String,
    /// `json` or `avro`.
    pub format: String,
    pub file: String,
    pub records: usize,
    pub bytes: usize,
    pub partitions: usize,
    pub devices: usize,
    /// Glue schema version ids in the Avro values, with their definitions.
    pub schemas: BTreeMap<Uuid, String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Manifest {
    pub events: Vec<EventFile>,
}

impl Manifest {
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("{}: {e} (run `pipeline-bench events` first)", path.display()))?;
        Ok(serde_json::from_str(&text)?)
    }

    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::write(dir.join(MANIFEST_FILE), serde_json::to_vec_pretty(self)?)?;
        Ok(())
    }
}

impl EventFile {
    pub fn path(&self, dir: &Path) -> PathBuf {
        dir.join(&self.file)
    }

    pub fn label(&self) -> String {
        format!("{}/{}", self.batch, self.format)
    }
}
