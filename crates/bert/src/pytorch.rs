//! Zip-format PyTorch checkpoints (`torch.save`, as `pytorch_model.bin`) read in place.
//!
//! The archive stores each tensor's storage as an uncompressed entry, so a tensor is read when
//! the model asks for it: read by the kernel straight from the file (the page cache) into the
//! buffer it keeps, in parallel slices, with no extraction, no mapping, no second copy on disk
//! and no conversion cache. Each storage's CRC-32 is computed on the bytes read (per slice,
//! combined) and checked against the archive's directory, and [`PthFile::verify_rest`] checks the
//! storages the model did not use: a corrupted or truncated download is refused, naming the file.
//! Only the pickle (`data.pkl`, a few kilobytes) is parsed, by candle. Peak memory is the model
//! plus one weight matrix.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::Path;

use candle_core::pickle::TensorInfo;
use candle_core::{DType, Device, Layout, Tensor};
use rayon::prelude::*;

use crate::candle_error::candle_message;
use mb_stats_files::error::{Error, Result, input};

/// Where an archive entry's bytes are.
struct Entry {
    /// Offset of the data in the file.
    start: u64,
    /// Bytes (the entry is stored: compressed size = size).
    size: u64,
    /// CRC-32 from the archive's directory.
    crc: u32,
}

/// An opened `pytorch_model.bin`: its directory and the tensors' places, read on request.
pub struct PthFile {
    path: std::path::PathBuf,
    file: std::fs::File,
    /// Each tensor's dtype, layout and storage, by its name in the file.
    tensors: HashMap<String, TensorInfo>,
    /// Stored storage entries.
    entries: HashMap<String, Entry>,
    /// Storages whose CRC has been checked.
    verified: RefCell<HashSet<String>>,
    /// Tensors already made from a storage several names share (tied weights), by storage and
    /// layout: made once, shared.
    shared: RefCell<Vec<(String, Layout, Tensor)>>,
}

impl PthFile {
    /// Open a zip-format PyTorch state dict: check its kind, read its directory and pickle, and
    /// check the CRC of its small entries (the pickle, the version record). Refuses an empty file,
    /// a legacy (non-zip) pickle, other files and corrupt archives with one line each.
    pub fn open(path: &Path) -> Result<Self> {
        check_kind(path)?;
        let corrupt = |what: String| corrupt(path, what);
        let file = std::fs::File::open(path).map_err(|e| input(format!("{}: {e}", path.display())))?;
        let mut archive = zip::ZipArchive::new(std::io::BufReader::new(&file)).map_err(|e| corrupt(e.to_string()))?;
        let infos = candle_core::pickle::read_pth_tensor_info(path, false, None).map_err(|e| {
            input(format!(
                "{}: not a readable PyTorch state dict ({})",
                path.display(),
                candle_message(&e)
            ))
        })?;
        let storages: HashSet<&str> = infos.iter().map(|i| i.path.as_str()).collect();
        let mut entries = HashMap::new();
        for i in 0..archive.len() {
            let entry = archive.by_index_raw(i).map_err(|e| corrupt(e.to_string()))?;
            let name = entry.name().map_err(|e| corrupt(e.to_string()))?.to_string();
            let stored = entry.compression() == zip::CompressionMethod::Stored;
            match (storages.contains(name.as_str()), stored, entry.data_start()) {
                (true, true, Some(start)) => {
                    let place = Entry {
                        start,
                        size: entry.size(),
                        crc: entry.crc32(),
                    };
                    entries.insert(name, place);
                }
                // The pickle, the version record: small; read through the archive, which checks
                // the CRC at the end.
                (false, _, _) => {
                    drop(entry);
                    let mut entry = archive.by_index(i).map_err(|e| corrupt(e.to_string()))?;
                    std::io::copy(&mut entry, &mut std::io::sink())
                        .map_err(|e| corrupt(format!("entry {name}: {e}")))?;
                }
                (true, _, _) => return Err(corrupt(format!("entry {name}: a compressed tensor storage"))),
            }
        }
        Ok(PthFile {
            path: path.to_path_buf(),
            file,
            tensors: infos.into_iter().map(|i| (i.name.clone(), i)).collect(),
            entries,
            verified: RefCell::new(HashSet::new()),
            shared: RefCell::new(Vec::new()),
        })
    }

    /// The tensors' names in the file.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// Every tensor's shape.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.tensors.get(name).map(|i| i.layout.dims())
    }

    /// The tensor `name` on the CPU in its stored dtype (`None` if there is none), copied from
    /// its storage's mapping into the buffer it keeps, the storage's CRC checked alongside.
    pub fn read(&self, name: &str) -> Result<Option<Tensor>> {
        let Some(info) = self.tensors.get(name) else {
            return Ok(None);
        };
        let users = self.tensors.values().filter(|i| i.path == info.path).count();
        if users > 1
            && let Some((_, _, t)) = self
                .shared
                .borrow()
                .iter()
                .find(|(s, l, _)| *s == info.path && *l == info.layout)
        {
            return Ok(Some(t.clone()));
        }
        let storage = self.read_storage(&info.path, info.dtype)?;
        let tensor = to_tensor(storage, info).map_err(|e| self.bad(name, e))?;
        if users > 1 {
            self.shared
                .borrow_mut()
                .push((info.path.clone(), info.layout.clone(), tensor.clone()));
        }
        Ok(Some(tensor))
    }

    /// Check the CRC of every storage not read yet (tensors the model does not use), so a corrupt
    /// file is refused whatever part of it is damaged.
    pub fn verify_rest(&self) -> Result<()> {
        let pending: Vec<String> = self
            .entries
            .keys()
            .filter(|k| !self.verified.borrow().contains(*k))
            .cloned()
            .collect();
        for storage in pending {
            let mut bytes = vec![0u8; self.entry(&storage)?.1];
            self.read_into(&storage, &mut bytes)?;
        }
        Ok(())
    }

    /// A storage entry's place in the file and its length.
    fn entry(&self, storage: &str) -> Result<(&Entry, usize)> {
        let entry = self
            .entries
            .get(storage)
            .ok_or_else(|| corrupt(&self.path, format!("no entry {storage}")))?;
        let length = usize::try_from(entry.size).map_err(|e| corrupt(&self.path, e.to_string()))?;
        Ok((entry, length))
    }

    /// A storage's bytes, CRC checked: f32 storages into an f32 buffer the tensor can own as it
    /// is, other dtypes as plain bytes.
    fn read_storage(&self, storage: &str, dtype: DType) -> Result<Storage> {
        let length = self.entry(storage)?.1;
        if dtype == DType::F32 && length.is_multiple_of(4) {
            let mut values = zeroed_f32(length / 4);
            // SAFETY: f32 has no padding and every byte pattern is a valid f32; the length is exact.
            let bytes = unsafe { std::slice::from_raw_parts_mut(values.as_mut_ptr().cast::<u8>(), length) };
            self.read_into(storage, bytes)?;
            return Ok(Storage::F32(values));
        }
        let mut bytes = vec![0u8; length];
        self.read_into(storage, &mut bytes)?;
        Ok(Storage::Bytes(bytes))
    }

    /// Reads storage `storage` into `out` (its exact length) in parallel slices, each slice's
    /// CRC-32 computed while it is hot and the slices' CRCs combined, and checks the whole
    /// against the archive's directory. Time: one kernel copy of the bytes plus the CRC, split
    /// over the threads.
    fn read_into(&self, storage: &str, out: &mut [u8]) -> Result<()> {
        const SLICE: usize = 4 << 20;
        let (start, file) = (self.entry(storage)?.0.start, &self.file);
        let slices: Vec<std::io::Result<crc32fast::Hasher>> = out
            .par_chunks_mut(SLICE)
            .enumerate()
            .map(|(i, slice)| {
                read_at(file, slice, start + (i * SLICE) as u64)?;
                let mut crc = crc32fast::Hasher::new();
                crc.update(slice);
                Ok(crc)
            })
            .collect();
        let mut crc = crc32fast::Hasher::new();
        for slice in slices {
            crc.combine(&slice.map_err(|e| corrupt(&self.path, format!("entry {storage}: {e}")))?);
        }
        self.check(storage, crc.finalize())
    }

    /// Compare a storage's CRC with the archive's directory.
    fn check(&self, storage: &str, crc: u32) -> Result<()> {
        match self.entries.get(storage).is_some_and(|e| e.crc == crc) {
            true => {
                self.verified.borrow_mut().insert(storage.to_string());
                Ok(())
            }
            false => Err(corrupt(&self.path, format!("entry {storage}: CRC-32 mismatch"))),
        }
    }

    fn bad(&self, name: &str, e: String) -> Error {
        input(format!("{}: tensor {name}: {e}", self.path.display()))
    }
}

/// The one-line error of a damaged archive.
fn corrupt(path: &Path, what: String) -> Error {
    input(format!(
        "{}: corrupt archive ({what}); delete it and fetch the checkpoint again",
        path.display()
    ))
}

/// `buffer.len()` bytes of `file` from `offset` (positioned reads: threads share the file).
fn read_at(file: &std::fs::File, buffer: &mut [u8], offset: u64) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::read_exact_at(file, buffer, offset)
    }
    #[cfg(windows)]
    {
        let (mut done, mut buffer) = (0u64, buffer);
        while !buffer.is_empty() {
            match std::os::windows::fs::FileExt::seek_read(file, buffer, offset + done)? {
                0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                n => (done, buffer) = (done + n as u64, &mut buffer[n..]),
            }
        }
        Ok(())
    }
}

/// A zeroed f32 buffer of `n` values with its pages already in place: on Linux one
/// `MADV_POPULATE_WRITE` call faults them all in, instead of one page fault per 4 KiB on the
/// first write (a hundred thousand for BERT-base; measured: fault handling 10% → 3.5% of a
/// load's samples, and steadier load times). Where the call is not available the pages fault in
/// as usual.
fn zeroed_f32(n: usize) -> Vec<f32> {
    let values = vec![0f32; n];
    #[cfg(target_os = "linux")]
    if n >= 1 << 18 {
        // madvise takes whole pages: the allocation's pages from its first page boundary.
        const PAGE: usize = 4096;
        let (start, end) = (values.as_ptr() as usize, values.as_ptr() as usize + 4 * n);
        let first = start.next_multiple_of(PAGE);
        // SAFETY: advice on this allocation's own pages, which are zero and stay zero; a failure
        // (an old kernel) changes nothing.
        unsafe {
            libc::madvise(
                first as *mut libc::c_void,
                (end - first) / PAGE * PAGE,
                libc::MADV_POPULATE_WRITE,
            );
        }
    }
    values
}

/// A storage's bytes: f32 storages are read into an f32 buffer the tensor can own as it is.
#[derive(Clone)]
enum Storage {
    F32(Vec<f32>),
    Bytes(Vec<u8>),
}

impl Storage {
    fn bytes(&self) -> &[u8] {
        match self {
            Storage::F32(v) => f32_bytes(v),
            Storage::Bytes(v) => v,
        }
    }
}

fn f32_bytes(v: &[f32]) -> &[u8] {
    // SAFETY: f32 has no padding and every byte pattern is a valid u8; the length is exact.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
}

/// The tensor `info` describes in its storage: the storage itself when it is exactly the tensor
/// (no copy), else a copy of its range; C- or Fortran-contiguous layouts only, as candle.
fn to_tensor(storage: Storage, info: &TensorInfo) -> std::result::Result<Tensor, String> {
    let layout = &info.layout;
    let shape = layout.shape().clone();
    let fortran = layout.is_fortran_contiguous() && !layout.is_contiguous();
    if !layout.is_contiguous() && !fortran {
        return Err(format!("non-contiguous layout {layout:?}"));
    }
    let size = info.dtype.size_in_bytes();
    let (start, length) = (layout.start_offset() * size, shape.elem_count() * size);
    let fail = |e: candle_core::Error| candle_message(&e);
    let stored = shape.clone();
    let stored = match fortran {
        true => candle_core::Shape::from(stored.dims().iter().rev().copied().collect::<Vec<_>>()),
        false => stored,
    };
    let tensor = match storage {
        Storage::F32(values) if start == 0 && length == values.len() * 4 => {
            Tensor::from_vec(values, stored, &Device::Cpu).map_err(fail)?
        }
        other => {
            let bytes = other.bytes();
            let range = bytes
                .get(start..start + length)
                .ok_or_else(|| format!("storage of {} bytes is too short", bytes.len()))?;
            Tensor::from_raw_buffer(range, info.dtype, stored.dims(), &Device::Cpu).map_err(fail)?
        }
    };
    match fortran {
        true => {
            let reversed: Vec<usize> = (0..shape.rank()).rev().collect();
            tensor.permute(reversed).map_err(fail)
        }
        false => Ok(tensor),
    }
}

/// Tell an empty file, a legacy pickle and other files from a zip archive, in one line each.
fn check_kind(path: &Path) -> Result<()> {
    let mut magic = [0u8; 4];
    let mut file = std::fs::File::open(path).map_err(|e| input(format!("{}: {e}", path.display())))?;
    let length = file.metadata().map(|m| m.len()).unwrap_or(0);
    if length == 0 {
        return Err(input(format!(
            "{}: empty file (0 bytes; an interrupted download?); delete it and fetch the checkpoint again",
            path.display()
        )));
    }
    let is_zip = file.read_exact(&mut magic).is_ok() && &magic == b"PK\x03\x04";
    // Pickle protocol 2+ starts with 0x80 and the protocol number.
    let is_pickle = magic[0] == 0x80 && (2..=5).contains(&magic[1]);
    match (is_zip, is_pickle) {
        (true, _) => Ok(()),
        (false, true) => Err(input(format!(
            "{}: a legacy (non-zip) PyTorch pickle, which mb-stats cannot read; convert it once with \
             `python -c \"import torch; torch.save(torch.load('{0}', map_location='cpu'), '{0}')\"` \
             (torch >= 1.6 writes the zip format) or save model.safetensors next to config.json",
            path.display()
        ))),
        (false, false) => Err(Error::Input(format!(
            "{}: not a PyTorch checkpoint (neither a zip archive nor a pickle); a damaged or wrong file?",
            path.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/bert/pretraining-bin/pytorch_model.bin")
    }

    #[test]
    fn tensors_read_in_place_equal_candles_reader() {
        let file = PthFile::open(&fixture()).unwrap();
        let all = candle_core::pickle::read_all(fixture()).unwrap();
        assert!(all.len() > 20);
        let flat = |t: &Tensor| {
            t.to_dtype(DType::F64)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f64>()
                .unwrap()
        };
        for (name, expected) in all {
            let ours = file.read(&name).unwrap().unwrap();
            assert_eq!(flat(&ours), flat(&expected), "{name}");
        }
    }

    #[test]
    fn damage_in_a_tensor_the_model_never_reads_is_still_refused() {
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("pytorch_model.bin");
        std::fs::copy(fixture(), &copy).unwrap();
        // Flip a byte of the NSP head, which a BERT encoder never asks for.
        let file = PthFile::open(&copy).unwrap();
        let storage = file.tensors["cls.seq_relationship.weight"].path.clone();
        let at = file.entries[&storage].start as usize;
        drop(file);
        let mut bytes = std::fs::read(&copy).unwrap();
        bytes[at] ^= 0xff;
        std::fs::write(&copy, bytes).unwrap();
        let file = PthFile::open(&copy).unwrap();
        let error = file.verify_rest().unwrap_err().to_string();
        assert!(error.contains("corrupt archive") && error.contains("CRC-32"), "{error}");
    }
}
