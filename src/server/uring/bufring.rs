//! The per-core provided-buffer ring that every connection's multishot recv draws from.
//!
//! One ring of `count` buffers of `size` bytes is registered with the core's io_uring as buffer
//! group 0. The kernel picks a buffer when data arrives for any connection and names it in the
//! completion; the driver decodes the bytes straight from it and gives it back at once, so no
//! connection owns a read buffer, idle or busy. Returned buffers are published to the kernel
//! in one tail update per loop turn.

use std::io;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;
use io_uring::Submitter;

/// The buffer group id of the ring.
pub(crate) const GROUP: u16 = 0;

/// An anonymous, page-aligned mapping, unmapped on drop.
struct Mapping {
    ptr: *mut u8,
    len: usize,
}

impl Mapping {
    fn new(len: usize) -> io::Result<Mapping> {
        // SAFETY: a fresh private anonymous mapping; checked for failure below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping { ptr: ptr.cast(), len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` describe a mapping made by `Mapping::new` and unmapped only here.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// The registered ring and the buffers it hands out.
pub(crate) struct BufRing {
    entries: Mapping,
    buffers: Mapping,
    count: u16,
    size: u32,
    /// Our copy of the tail: buffers returned but not yet published are `tail - published`.
    tail: u16,
}

impl BufRing {
    /// Maps `count` (a power of two, at most 32768) buffers of `size` bytes, registers them as
    /// buffer group [`GROUP`] and hands all of them to the kernel.
    pub fn register(submitter: &Submitter<'_>, count: u16, size: u32) -> io::Result<BufRing> {
        if !count.is_power_of_two() || count > 1 << 15 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("io_uring buffer count must be a power of two up to 32768, not {count}"),
            ));
        }
        let entries = Mapping::new(count as usize * std::mem::size_of::<BufRingEntry>())?;
        let buffers = Mapping::new(count as usize * size as usize)?;
        // SAFETY: `entries` is page-aligned, sized for `count` entries and outlives the
        // registration (the ring is dropped, and with it the registration, before the mapping;
        // see the field order of `Uring`).
        unsafe { submitter.register_buf_ring_with_flags(entries.ptr as u64, count, GROUP, 0)? };
        let mut ring = BufRing {
            entries,
            buffers,
            count,
            size,
            tail: 0,
        };
        for bid in 0..count {
            ring.give_back(bid);
        }
        ring.publish();
        Ok(ring)
    }

    /// The first `len` bytes of buffer `bid`, which the kernel just filled and named in a
    /// completion. The slice is valid until the buffer is given back.
    pub fn filled(&mut self, bid: u16, len: usize) -> &mut [u8] {
        assert!(
            bid < self.count && len <= self.size as usize,
            "completion names buffer {bid} with {len} bytes"
        );
        // SAFETY: buffer `bid` lies inside the mapping, was filled by the kernel with `len`
        // bytes, and is ours until `give_back`; `&mut self` keeps the slice unique.
        unsafe { std::slice::from_raw_parts_mut(self.buffers.ptr.add(bid as usize * self.size as usize), len) }
    }

    /// Returns buffer `bid` to the ring (seen by the kernel after the next [`BufRing::publish`]).
    pub fn give_back(&mut self, bid: u16) {
        let slot = (self.tail & (self.count - 1)) as usize;
        // SAFETY: `slot` < count, so the entry lies inside the entries mapping; the kernel reads
        // entries only up to the published tail, which does not include this one yet.
        let entry = unsafe { &mut *(self.entries.ptr as *mut BufRingEntry).add(slot) };
        // SAFETY: the buffer address is inside the buffers mapping.
        entry.set_addr(unsafe { self.buffers.ptr.add(bid as usize * self.size as usize) } as u64);
        entry.set_len(self.size);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Publishes every returned buffer to the kernel with one release store of the tail.
    pub fn publish(&self) {
        // SAFETY: the tail field overlays the first entry's reserved bytes, which the kernel
        // never uses otherwise; the store is atomic as the kernel reads it concurrently.
        unsafe {
            let tail = BufRingEntry::tail(self.entries.ptr as *const BufRingEntry) as *const AtomicU16;
            (*tail).store(self.tail, Ordering::Release);
        }
    }
}
