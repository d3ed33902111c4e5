//! Anonymous memory for the memory ballast: reserved and committed with VirtualAlloc
//! (charged against the commit limit, as Windows charges every private allocation, but
//! given physical pages only when touched), freed when dropped. Unlike a memmap2 view of
//! a pagefile section, committed pages can be decommitted range by range, which is how
//! the ballast gives memory back.
use std::io;
use windows_sys::Win32::System::Memory as vm;

pub struct Mapping {
    at: *mut u8,
    len: usize,
}

// SAFETY: the region is owned by this value alone (no aliases are handed out beyond
// borrows of `self`), so it may move to another thread like a Vec<u8>.
unsafe impl Send for Mapping {}

impl Mapping {
    pub fn new(len: usize) -> io::Result<Mapping> {
        // SAFETY: a fresh allocation at an address the system picks; nothing of ours is
        // touched. A null result is checked.
        let at = unsafe {
            vm::VirtualAlloc(
                std::ptr::null(),
                len.max(1),
                vm::MEM_RESERVE | vm::MEM_COMMIT,
                vm::PAGE_READWRITE,
            )
        };
        if at.is_null() {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping { at: at.cast(), len })
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: `at` points to `len` committed, read-write bytes owned by `self`,
        // borrowed mutably for as long as the slice lives.
        unsafe { std::slice::from_raw_parts_mut(self.at, self.len) }
    }

    /// Give the pages from `from` to the end back now (decommit, then commit again: they
    /// hold no memory until touched and read as zeros). `from` must be page-aligned.
    pub fn discard_from(&mut self, from: usize) -> io::Result<()> {
        if from % super::real_page_size() != 0 || from > self.len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a page-aligned offset in the mapping",
            ));
        }
        let n = self.len - from;
        if n == 0 {
            return Ok(());
        }
        // SAFETY: [at + from, at + len) lies in our reservation and is borrowed mutably
        // through `self`, so no reference sees its pages go; decommit and recommit keep
        // the reservation, so the address range stays ours.
        unsafe {
            let p = self.at.add(from).cast();
            super::win!(vm::VirtualFree(p, n, vm::MEM_DECOMMIT))?;
            if vm::VirtualAlloc(p, n, vm::MEM_COMMIT, vm::PAGE_READWRITE).is_null() {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `at` is the base of our reservation, released once, here.
        unsafe { vm::VirtualFree(self.at.cast(), 0, vm::MEM_RELEASE) };
    }
}
