//! Moving room records between nodes when the node list changes (`stelgano-relay nodes`):
//! which records change owner on nginx's ring, and the export / import / drop steps that carry
//! just those records, sealed as stored, from a node to their new owner.
//!
//! Every step opens a node's store directly, so that node's relay must be stopped (sled allows
//! one process per database; the store says so if it is not). docs/SCALING.md gives the
//! procedure and why it works offline. What moves is a record's locator, ring position and
//! sealed bytes: no room hash, nothing opened, and never a message (messages live only in a
//! running relay's memory).
//!
//! A bundle file is `MAGIC`, the destination node's name (u16 length, bytes), the record count
//! (u64), then per record its locator (32 bytes), ring position (u32), value length (u32) and
//! value, and last a SHA-256 of everything before it. All integers are big-endian. Its hex
//! digest is the receipt that `import` prints and `drop` asks for, so a node drops exactly the
//! records that were imported elsewhere, and only if they are still what was exported.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use stelgano_store::{Inserted, SealedRecord, Store, StoreConfig, StoreError};

use crate::ring::Ring;
use crate::RelayError;

const MAGIC: &[u8; 16] = b"stelgano-move-1\n";
const DIGEST_LEN: usize = 32;
/// Bound on one record's sealed value in a bundle (the store's own bound).
const MAX_VALUE: usize = stelgano_store::MAX_SEALED_LEN;

/// What a node's store holds with respect to a new ring.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Records in the store.
    pub records: usize,
    /// Records stored before ring positions were kept and not opened since: they cannot be
    /// placed, so they are never exported or dropped.
    pub unplaced: usize,
    /// Placed records that the new ring leaves on this node.
    pub stay: usize,
    /// Placed records that the old ring (when given) does not give to this node: left over
    /// from an earlier, unfinished move, or routed here by a different list.
    pub misplaced: usize,
    /// Placed records that move, by destination node.
    pub moving: BTreeMap<String, usize>,
}

impl Plan {
    /// How many records move in all.
    pub fn moving_total(&self) -> usize {
        self.moving.values().sum()
    }
}

/// What `import` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// Records newly stored.
    pub new: usize,
    /// Records that were already there, byte for byte (a repeated import).
    pub already: usize,
    /// The bundle's digest, in hex: `drop` on the old node asks for it.
    pub receipt: String,
}

/// What `drop` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    /// Records removed.
    pub removed: usize,
    /// Records of the bundle that were not there any more (a repeated drop).
    pub absent: usize,
}

/// Counts what a change from `old` (if known) to `new` would move off the node `this`.
/// Reads the store in `data_dir` and changes nothing.
pub fn plan(
    data_dir: &Path,
    this: &str,
    old: Option<&Ring>,
    new: &Ring,
) -> Result<Plan, RelayError> {
    let store = open_existing(data_dir)?;
    let mut plan = Plan::default();
    store.for_each_sealed(|rec| {
        tally(&mut plan, &rec, this, old, new);
        Ok::<(), RelayError>(())
    })?;
    Ok(plan)
}

fn tally(plan: &mut Plan, rec: &SealedRecord, this: &str, old: Option<&Ring>, new: &Ring) {
    plan.records += 1;
    let Some(pos) = rec.ring else {
        plan.unplaced += 1;
        return;
    };
    if old.is_some_and(|old| old.owner_name(pos) != this) {
        plan.misplaced += 1;
    }
    let to = new.owner_name(pos);
    if to == this {
        plan.stay += 1;
    } else {
        *plan.moving.entry(to.to_owned()).or_default() += 1;
    }
}

/// Writes one bundle per destination into `out_dir` (which must exist) with every placed
/// record of node `this` that `new` gives to another node; the store is not changed. Refuses,
/// writing nothing, while the store holds unplaced records unless `keep_unplaced` (they then
/// stay here, and their rooms are at risk if their owner changes: see docs/SCALING.md).
/// Returns the plan and the bundles written.
pub fn export(
    data_dir: &Path,
    this: &str,
    new: &Ring,
    out_dir: &Path,
    keep_unplaced: bool,
) -> Result<(Plan, Vec<PathBuf>), RelayError> {
    let store = open_existing(data_dir)?;
    let mut plan = Plan::default();
    store.for_each_sealed(|rec| {
        tally(&mut plan, &rec, this, None, new);
        Ok::<(), RelayError>(())
    })?;
    if plan.unplaced > 0 && !keep_unplaced {
        return Err(RelayError::Nodes(format!(
            "{} record(s) have no ring position yet (stored before this version and not opened \
             since), so where they belong is unknown; nothing was exported. Wait until they are \
             opened or expire, or pass --keep-unplaced to leave them on this node",
            plan.unplaced
        )));
    }
    let mut writers = BTreeMap::new();
    let mut paths = Vec::new();
    for (dest, count) in &plan.moving {
        let path = out_dir.join(bundle_name(dest));
        let w = BundleWriter::create(&path, dest, *count)?;
        writers.insert(dest.clone(), w);
        paths.push(path);
    }
    store.for_each_sealed(|rec| {
        let Some(pos) = rec.ring else {
            return Ok(());
        };
        let to = new.owner_name(pos);
        if to == this {
            return Ok(());
        }
        match writers.get_mut(to) {
            Some(w) => w.push(&rec, pos),
            // Only if a record was stored between the two passes: the relay must be stopped.
            None => Err(RelayError::Nodes(
                "the store changed during the export (is the relay running?)".into(),
            )),
        }
    })?;
    for (_, w) in writers {
        w.finish()?;
    }
    Ok((plan, paths))
}

/// Stores the records of `bundle` in node `this`'s store after checking, before writing
/// anything, that the bundle is intact, addressed to `this`, and that `new` gives every one of
/// its records to `this`. A record already there with the same bytes is counted, not
/// rewritten; a different record for the same room stops the import.
pub async fn import(
    data_dir: &Path,
    this: &str,
    new: &Ring,
    bundle: &Path,
) -> Result<Imported, RelayError> {
    let (dest, records, receipt) = read_bundle(bundle)?;
    if dest != this {
        return Err(RelayError::Nodes(format!(
            "the bundle is for node {dest}, not {this}"
        )));
    }
    for rec in &records {
        let pos = rec.ring.unwrap_or_default();
        if new.owner_name(pos) != this {
            return Err(RelayError::Nodes(format!(
                "the bundle holds a record that the new node list gives to {}, not {this}; \
                 was it exported with the same list?",
                new.owner_name(pos)
            )));
        }
    }
    std::fs::create_dir_all(data_dir)?;
    let store = open(data_dir)?;
    let mut out = Imported {
        new: 0,
        already: 0,
        receipt,
    };
    for rec in &records {
        match store.insert_sealed(rec)? {
            Inserted::New => out.new += 1,
            Inserted::AlreadyThere => out.already += 1,
        }
    }
    store.flush().await?;
    Ok(out)
}

/// Removes from the old node's store the records of `bundle`, once its import elsewhere is
/// proven by `receipt`. A record that changed since the export is refused (and stops the drop
/// there); one already gone is counted.
pub async fn drop_moved(
    data_dir: &Path,
    bundle: &Path,
    receipt: &str,
) -> Result<Dropped, RelayError> {
    let (_, records, digest) = read_bundle(bundle)?;
    if !receipt.trim().eq_ignore_ascii_case(&digest) {
        return Err(RelayError::Nodes(
            "the receipt does not match this bundle: import it on its node first and pass the \
             receipt that import printed"
                .into(),
        ));
    }
    let store = open_existing(data_dir)?;
    let mut out = Dropped {
        removed: 0,
        absent: 0,
    };
    for rec in &records {
        if store.remove_sealed(rec)? {
            out.removed += 1;
        } else {
            out.absent += 1;
        }
    }
    store.flush().await?;
    Ok(out)
}

/// The file name of the bundle for `dest`: its name with anything but letters, digits, `.` and
/// `-` replaced.
pub fn bundle_name(dest: &str) -> String {
    let safe: String = dest
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("to-{safe}.move")
}

fn open(data_dir: &Path) -> Result<Store, RelayError> {
    Store::open(data_dir, &StoreConfig::default()).map_err(|e| match e {
        StoreError::Sled(sled_err) if is_busy(&sled_err) => RelayError::Nodes(format!(
            "{} is in use: stop this node's relay first",
            data_dir.display()
        )),
        other => RelayError::Store(other),
    })
}

fn is_busy(e: &impl std::fmt::Display) -> bool {
    e.to_string().contains("could not acquire lock")
}

/// Opens a node's store that must already exist: a mistyped directory is an error rather
/// than a new, empty store.
fn open_existing(data_dir: &Path) -> Result<Store, RelayError> {
    if !data_dir.join("store-v2").is_dir() {
        return Err(RelayError::Nodes(format!(
            "no room store in {}",
            data_dir.display()
        )));
    }
    open(data_dir)
}

struct BundleWriter {
    file: std::io::BufWriter<std::fs::File>,
    digest: Sha256,
    path: PathBuf,
    promised: usize,
    written: usize,
}

impl BundleWriter {
    fn create(path: &Path, dest: &str, count: usize) -> Result<BundleWriter, RelayError> {
        // create_new: an old bundle is never overwritten, so one not yet dropped is not lost.
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| RelayError::Nodes(format!("cannot create {}: {e}", path.display())))?;
        let mut w = BundleWriter {
            file: std::io::BufWriter::new(file),
            digest: Sha256::new(),
            path: path.to_owned(),
            promised: count,
            written: 0,
        };
        let name_len = u16::try_from(dest.len())
            .map_err(|_| RelayError::Nodes("node name too long".into()))?;
        w.put(MAGIC)?;
        w.put(&name_len.to_be_bytes())?;
        w.put(dest.as_bytes())?;
        w.put(&(count as u64).to_be_bytes())?;
        Ok(w)
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), RelayError> {
        self.digest.update(bytes);
        self.file.write_all(bytes)?;
        Ok(())
    }

    fn push(&mut self, rec: &SealedRecord, pos: u32) -> Result<(), RelayError> {
        let len = u32::try_from(rec.value.len())
            .ok()
            .filter(|&l| l as usize <= MAX_VALUE)
            .ok_or_else(|| RelayError::Nodes("a stored record is too large to move".into()))?;
        self.put(rec.locator.as_bytes())?;
        self.put(&pos.to_be_bytes())?;
        self.put(&len.to_be_bytes())?;
        self.put(&rec.value)?;
        self.written += 1;
        Ok(())
    }

    fn finish(mut self) -> Result<(), RelayError> {
        if self.written != self.promised {
            return Err(RelayError::Nodes(
                "the store changed during the export (is the relay running?)".into(),
            ));
        }
        let digest = std::mem::take(&mut self.digest).finalize();
        self.file.write_all(&digest)?;
        let file = self
            .file
            .into_inner()
            .map_err(|e| RelayError::Nodes(format!("{}: {}", self.path.display(), e.error())))?;
        file.sync_all()?;
        Ok(())
    }
}

/// Reads and checks a whole bundle: (destination, records, hex digest).
fn read_bundle(path: &Path) -> Result<(String, Vec<SealedRecord>, String), RelayError> {
    let bytes = std::fs::read(path)
        .map_err(|e| RelayError::Nodes(format!("cannot read {}: {e}", path.display())))?;
    parse_bundle(&bytes)
}

fn parse_bundle(bytes: &[u8]) -> Result<(String, Vec<SealedRecord>, String), RelayError> {
    let bad = |why: &str| RelayError::Nodes(format!("not a valid move bundle: {why}"));
    if bytes.len() < MAGIC.len() + DIGEST_LEN || &bytes[..MAGIC.len()] != MAGIC {
        return Err(bad("wrong header"));
    }
    let (body, digest) = bytes.split_at(bytes.len() - DIGEST_LEN);
    let computed = Sha256::digest(body);
    if computed.as_slice() != digest {
        return Err(bad("damaged or truncated (digest mismatch)"));
    }
    let mut r = Reader {
        rest: &body[MAGIC.len()..],
    };
    let name_len = usize::from(u16::from_be_bytes(r.array().ok_or_else(|| bad("short"))?));
    let dest = std::str::from_utf8(r.take(name_len).ok_or_else(|| bad("short"))?)
        .map_err(|_| bad("node name is not UTF-8"))?
        .to_owned();
    let count = u64::from_be_bytes(r.array().ok_or_else(|| bad("short"))?);
    // Each record takes at least 40 bytes, so a count the file cannot hold is refused before
    // any allocation is sized by it.
    if count > (r.rest.len() / 40) as u64 {
        return Err(bad("record count exceeds the file"));
    }
    let mut records = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let locator: [u8; 32] = r.array().ok_or_else(|| bad("short record"))?;
        let pos = u32::from_be_bytes(r.array().ok_or_else(|| bad("short record"))?);
        let len = u32::from_be_bytes(r.array().ok_or_else(|| bad("short record"))?) as usize;
        if len > MAX_VALUE {
            return Err(bad("record too large"));
        }
        let value = r.take(len).ok_or_else(|| bad("short record"))?.to_vec();
        records.push(SealedRecord::from_parts(locator, pos, value));
    }
    if !r.rest.is_empty() {
        return Err(bad("trailing bytes"));
    }
    Ok((dest, records, to_hex(digest)))
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.rest.len() < n {
            return None;
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N).and_then(|b| b.try_into().ok())
    }
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damaged_bundles_are_refused() {
        assert!(parse_bundle(b"").is_err());
        let mut body = MAGIC.to_vec();
        body.extend_from_slice(&3u16.to_be_bytes());
        body.extend_from_slice(b"a:1");
        body.extend_from_slice(&u64::MAX.to_be_bytes());
        let mut whole = body.clone();
        whole.extend_from_slice(&Sha256::digest(&body));
        // A huge count with a valid digest is refused without allocating for it.
        assert!(parse_bundle(&whole).is_err());
        // A flipped bit anywhere fails the digest.
        let mut flipped = whole.clone();
        flipped[MAGIC.len() + 2] ^= 1;
        assert!(parse_bundle(&flipped).is_err());

        let mut body = MAGIC.to_vec();
        body.extend_from_slice(&3u16.to_be_bytes());
        body.extend_from_slice(b"a:1");
        body.extend_from_slice(&0u64.to_be_bytes());
        let mut whole = body.clone();
        whole.extend_from_slice(&Sha256::digest(&body));
        let (dest, recs, receipt) = parse_bundle(&whole).unwrap();
        assert_eq!(dest, "a:1");
        assert!(recs.is_empty());
        assert_eq!(receipt.len(), 64);
    }

    #[test]
    fn bundle_names_are_plain_files() {
        assert_eq!(bundle_name("127.0.0.5:8080"), "to-127.0.0.5_8080.move");
        assert_eq!(bundle_name("unix:/run/x"), "to-unix__run_x.move");
    }
}
