//! The sink's spool: batches kept on disk while PostgreSQL is down, replayed in order.
//!
//! One file per node, append-only. Each batch is a header line
//! `{"n":…,"len":…,"sum":"<BLAKE3 of the payload>"}` and a payload of `len` bytes (one
//! JSON row per line), synced to disk before the writer goes on. A batch whose checksum or
//! shape does not hold — a torn write at a crash — ends the reading: it and what follows
//! are dropped and counted, never stored half.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use super::row::Row;

#[derive(serde::Serialize, serde::Deserialize)]
struct Header {
    n: u64,
    len: u64,
    sum: String,
}

pub(crate) struct Spool {
    path: PathBuf,
    max_bytes: u64,
    len: u64,
    records: u64,
}

impl Spool {
    /// The spool of `node` in `dir` (created if missing), at most `max_bytes`.
    pub(crate) fn open(dir: &Path, node: &str, max_bytes: u64) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let safe: String = node
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .take(64)
            .collect();
        let path = dir.join(format!("tokenlife-audit-{safe}.spool"));
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let len = file.metadata()?.len();
        let mut spool = Self {
            path,
            max_bytes,
            len,
            records: 0,
        };
        let (batches, _, whole) = spool.read_batches();
        spool.records = batches.iter().map(|b| b.len() as u64).sum();
        if whole < len {
            // A batch torn by a crash: cut it off, so later batches are not hidden behind it.
            file.set_len(whole)?;
            file.sync_all()?;
            spool.len = whole;
        }
        Ok(spool)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Records held (as counted when opened and appended since).
    pub(crate) fn records(&self) -> u64 {
        self.records
    }

    /// Appends one batch and syncs it; `Ok(false)` when it does not fit.
    pub(crate) fn append(&mut self, rows: &[Row]) -> std::io::Result<bool> {
        let mut payload = Vec::new();
        for r in rows {
            serde_json::to_writer(&mut payload, r)?;
            payload.push(b'\n');
        }
        let header = serde_json::to_string(&Header {
            n: rows.len() as u64,
            len: payload.len() as u64,
            sum: blake3::hash(&payload).to_hex().to_string(),
        })?;
        let size = (header.len() + 1 + payload.len()) as u64;
        if self.len.saturating_add(size) > self.max_bytes {
            return Ok(false);
        }
        let mut file = OpenOptions::new().append(true).open(&self.path)?;
        let mut record = Vec::with_capacity(size as usize);
        record.extend_from_slice(header.as_bytes());
        record.push(b'\n');
        record.extend_from_slice(&payload);
        file.write_all(&record)?;
        file.sync_data()?;
        self.len += size;
        self.records += rows.len() as u64;
        Ok(true)
    }

    /// Every whole batch, in order, and how many records of broken ones were lost.
    pub(crate) fn read_all(&self) -> (Vec<Vec<Row>>, u64) {
        let (batches, lost, _) = self.read_batches();
        (batches, lost)
    }

    /// As [`read_all`](Self::read_all), with the length of the whole batches.
    fn read_batches(&self) -> (Vec<Vec<Row>>, u64, u64) {
        let Ok(file) = File::open(&self.path) else {
            return (Vec::new(), 0, 0);
        };
        let mut reader = BufReader::new(file);
        let mut batches = Vec::new();
        let mut lost = 0;
        let mut whole_len = 0u64;
        loop {
            let mut line = String::new();
            let head = match reader.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(n) => n as u64,
            };
            let Ok(h) = serde_json::from_str::<Header>(line.trim_end()) else {
                break;
            };
            let mut payload = vec![0u8; usize::try_from(h.len).unwrap_or(0)];
            let whole = h.len <= self.max_bytes
                && reader.read_exact(&mut payload).is_ok()
                && blake3::hash(&payload).to_hex().as_str() == h.sum;
            let rows: Option<Vec<Row>> = whole
                .then(|| {
                    payload
                        .split(|&b| b == b'\n')
                        .filter(|l| !l.is_empty())
                        .map(|l| serde_json::from_slice(l).ok())
                        .collect()
                })
                .flatten();
            match rows {
                Some(rows) if rows.len() as u64 == h.n => {
                    batches.push(rows);
                    whole_len += head + h.len;
                }
                _ => {
                    lost += h.n;
                    break;
                }
            }
        }
        (batches, lost, whole_len)
    }

    /// Empties the spool (every batch is in the database).
    pub(crate) fn clear(&mut self) -> std::io::Result<()> {
        OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&self.path)?
            .sync_all()?;
        self.len = 0;
        self.records = 0;
        Ok(())
    }
}
