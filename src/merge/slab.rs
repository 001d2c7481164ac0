//! Memory for the record data the reading threads copy (ARCHITECTURE.md: merge's record slabs).
//! Each reading thread copies its lines, one after another, into a slab: up to 2 MiB mapped on
//! its own and populated in one call. A batch hands the merge ranges of the slab ([`Placed`]) and
//! the slab itself; records then share it ([`super::record::Data`]), and it is unmapped when the
//! last of them is gone.
//!
//! Why: copied into one allocation each, 130 MB of lines (`merge --sort start`, 4,096 files) cost
//! a malloc and a free per line, an `mprotect` per 4 KiB the malloc arenas grew (33,000 of them,
//! 59 ms), and a page fault per 4 KiB (80 ms, four fifths of it the fault's own cost rather than
//! zeroing the page). `MADV_POPULATE_WRITE` takes a slab's pages in one call instead. (Huge pages
//! took one fault per 2 MiB, but on the VM this was measured on a fresh huge page often cost ten
//! times its zeroing, and the median merge got slower: not used.) A slab whose records are all
//! gone is kept for the next one (up to [`MAX_SPARE`]): in the orders that write each span soon
//! after reading it, mapping, populating and unmapping a slab every 2 MiB made `--sort none` a
//! fifth slower than malloc's recycled memory.
//!
//! Soundness: a slab is written only by the thread that fills it, only beyond the last range it
//! handed out, and a range is read only after the batch holding it went through a channel (which
//! orders the writes before the reads). Written bytes are never written again, so shared `&[u8]`
//! to handed-out ranges never alias a write.

use std::ptr::NonNull;
use std::sync::Arc;

/// A slab's size at most and at least ([`slab_size`]).
const MAX_SLAB: usize = 2 << 20;
const MIN_SLAB: usize = 256 << 10;
/// Record data longer than this gets an allocation of its own; a batch is handed on once its
/// slab has less room left (so a batch never spans two slabs).
const MAX_IN_SLAB: usize = 64 << 10;

/// The slab size for a sort buffer of `budget` bytes: a sixteenth of it, within 256 KiB..2 MiB.
/// The buffer counts every slab it holds a record of as a whole, so slabs much larger than its
/// share would make it spill early.
pub fn slab_size(budget: usize) -> usize {
    (budget / 16).clamp(MIN_SLAB, MAX_SLAB)
}

/// Slabs whose records are all gone, mapped still (address, size), for the next slab to reuse.
static SPARE: std::sync::Mutex<Vec<(usize, usize)>> = std::sync::Mutex::new(Vec::new());
/// Spare slabs kept at most: two for each reading thread (`read_ahead::MAX_WORKERS`).
const MAX_SPARE: usize = 8;

/// `len` bytes of anonymous memory, kept spare or unmapped on drop.
pub struct Slab {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: a `Slab` owns its mapping; shared access is reads of ranges written before they were
// handed out (see the module's soundness note), so it can move and be shared between threads.
unsafe impl Send for Slab {}
unsafe impl Sync for Slab {}

impl Slab {
    /// A new slab of `len` bytes, or `None` if the memory cannot be mapped (the caller copies
    /// into allocations of their own instead).
    fn new(len: usize) -> Option<Slab> {
        if let Ok(mut spare) = SPARE.lock() {
            if let Some(i) = spare.iter().position(|&(_, size)| size == len) {
                let (at, _) = spare.swap_remove(i);
                return NonNull::new(at as *mut u8).map(|ptr| Slab { ptr, len });
            }
        }
        // SAFETY: an anonymous private mapping at an address the kernel chooses; checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return None;
        }
        // SAFETY: the mapping made above. Only advice: where it fails (before Linux 5.14) the
        // pages are faulted in one by one as they are written.
        unsafe { libc::madvise(p, len, libc::MADV_POPULATE_WRITE) };
        NonNull::new(p.cast::<u8>()).map(|ptr| Slab { ptr, len })
    }

    /// Bytes `start..start + len`, handed out already (see the module's soundness note).
    pub fn bytes(&self, start: u32, len: u32) -> &[u8] {
        let (start, len) = (start as usize, len as usize);
        assert!(start + len <= self.len, "a range beyond its slab");
        // SAFETY: in the mapping (checked), written before it was handed out, never written again.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(start), len) }
    }

    /// Its address: which slab (the sort buffer counts each slab once).
    pub fn id(&self) -> usize {
        self.ptr.as_ptr() as usize
    }

    /// Its size in bytes.
    pub fn size(&self) -> usize {
        self.len
    }
}

impl Drop for Slab {
    fn drop(&mut self) {
        // No reference into it outlives the slab, so the next one may write it all again.
        if let Ok(mut spare) = SPARE.lock() {
            if spare.len() < MAX_SPARE {
                spare.push((self.id(), self.len));
                return;
            }
        }
        // SAFETY: the mapping made in `new`; no reference into it outlives the slab.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

impl std::fmt::Debug for Slab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Slab({:#x}, {} bytes)", self.id(), self.len)
    }
}

/// Where a read-ahead item's record data is: its own allocation, or a range of the slab its
/// batch comes with (made into `Data` by [`Placed::into_data`]).
#[derive(Debug)]
pub enum Placed {
    Own(Vec<u8>),
    InSlab { start: u32, len: u32 },
}

impl Default for Placed {
    fn default() -> Self {
        Placed::Own(Vec::new())
    }
}

impl Placed {
    /// `slab`: the one the batch holding this came with.
    pub fn into_data(self, slab: Option<&Arc<Slab>>) -> super::record::Data {
        use super::record::Data;
        match (self, slab) {
            (Placed::Own(v), _) => Data::Own(v),
            (Placed::InSlab { start, len }, Some(slab)) => Data::Shared {
                slab: slab.clone(),
                start,
                len,
            },
            // A batch's items never leave it without their slab.
            (Placed::InSlab { .. }, None) => unreachable!("a slab range without its slab"),
        }
    }
}

/// One reading thread's slab being filled.
pub struct Filler {
    /// The size of new slabs ([`slab_size`]); 0: no slabs (see [`Filler::new`]).
    size: usize,
    slab: Option<Arc<Slab>>,
    /// Bytes written, and of those the ones handed out.
    filled: usize,
    handed: usize,
}

impl Filler {
    /// Fills slabs of `size` bytes; `None`: fills none, every record's data gets an allocation
    /// of its own (a filtered merge keeps few spans of a slab, and must not hold slabs for them).
    pub fn new(size: Option<usize>) -> Filler {
        Filler {
            size: size.map_or(0, |s| s.max(MIN_SLAB)),
            slab: None,
            filled: 0,
            handed: 0,
        }
    }

    /// `tag` then `bytes` as record data in the slab; `None` if they do not go there (too long,
    /// no room, no slabs): the caller gives them an allocation of their own.
    pub fn put(&mut self, tag: u8, bytes: &[u8]) -> Option<Placed> {
        let len = 1 + bytes.len();
        if len > MAX_IN_SLAB || self.size < self.filled + len {
            return None;
        }
        if self.slab.is_none() {
            self.slab = Slab::new(self.size).map(Arc::new);
            self.filled = 0;
            self.handed = 0;
        }
        let slab = self.slab.as_ref()?;
        let start = self.filled;
        // SAFETY: `start..start + len` is in the mapping (`size - filled >= len`, checked above)
        // and beyond everything handed out, so nothing else reads or writes it (see the module's
        // soundness note).
        unsafe {
            let at = slab.ptr.as_ptr().add(start);
            at.write(tag);
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), at.add(1), bytes.len());
        }
        self.filled += len;
        Some(Placed::InSlab {
            start: start as u32,
            len: len as u32,
        })
    }

    /// Whether the slab has too little room left for a batch to go on filling it.
    pub fn full(&self) -> bool {
        self.slab.is_some() && self.size < self.filled + MAX_IN_SLAB
    }

    /// The slab, to go with a batch whose items were placed since the last hand-out (`None` if
    /// none were). A full slab is let go: the next line starts a new one.
    pub fn hand_out(&mut self) -> Option<Arc<Slab>> {
        let new = self.filled > self.handed;
        self.handed = self.filled;
        let slab = match self.full() {
            true => {
                self.filled = 0;
                self.handed = 0;
                self.slab.take()
            }
            false => self.slab.clone(),
        };
        slab.filter(|_| new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_read_back_as_written_across_slabs_and_hand_outs() {
        let mut filler = Filler::new(Some(MIN_SLAB));
        let mut batches = Vec::new();
        let mut items = Vec::new();
        let mut expected = Vec::new();
        for i in 0..20_000u32 {
            let line = vec![(i % 251) as u8; (i as usize * 7919) % 700];
            items.push(filler.put(b'J', &line).expect("room: handed out when full"));
            expected.push(line);
            if filler.full() || i % 97 == 0 {
                batches.push((std::mem::take(&mut items), filler.hand_out()));
            }
        }
        batches.push((items, filler.hand_out()));
        let big = vec![7u8; MAX_IN_SLAB];
        assert!(filler.put(b'J', &big).is_none(), "too long for a slab");
        assert!(Filler::new(None).put(b'J', b"x").is_none(), "no slabs");
        let mut slabs = std::collections::HashSet::new();
        let mut n = 0;
        for (items, slab) in batches {
            if let Some(s) = &slab {
                slabs.insert(s.id());
                assert_eq!(s.size(), MIN_SLAB);
            }
            for placed in items {
                assert!(matches!(placed, Placed::InSlab { .. }), "{placed:?}");
                let data = placed.into_data(slab.as_ref());
                assert_eq!(data[0], b'J');
                assert_eq!(&data[1..], &expected[n][..]);
                n += 1;
            }
        }
        assert_eq!(n, expected.len());
        // 20,000 lines of 350 bytes on average in slabs of 256 KiB.
        assert!(slabs.len() > 20, "{} slabs", slabs.len());
    }

    #[test]
    fn a_slab_whose_records_are_gone_is_used_again() {
        // A size no other test uses, so none of them takes this slab in between.
        let size = MIN_SLAB + 4096;
        let mut filler = Filler::new(Some(size));
        let placed = filler.put(b'J', b"first").expect("room");
        let slab = filler.hand_out().expect("placed");
        let first = slab.id();
        let data = placed.into_data(Some(&slab));
        drop((slab, filler));
        assert_eq!(&data[..], b"Jfirst", "still held by its record");
        drop(data);
        let mut filler = Filler::new(Some(size));
        let placed = filler.put(b'J', b"second").expect("room");
        let slab = filler.hand_out().expect("placed");
        assert_eq!(slab.id(), first, "the spare slab");
        assert_eq!(&placed.into_data(Some(&slab))[..], b"Jsecond");
    }

    #[test]
    fn slab_sizes_follow_the_budget() {
        assert_eq!(slab_size(0), MIN_SLAB);
        assert_eq!(slab_size(16 << 20), 1 << 20);
        assert_eq!(slab_size(192 << 20), MAX_SLAB);
    }
}
