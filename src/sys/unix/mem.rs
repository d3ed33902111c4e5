//! Anonymous memory for the memory ballast.
use memmap2::{MmapMut, MmapOptions};

/// An anonymous private mapping (MAP_NORESERVE: under the default overcommit it is not
/// charged until touched), unmapped when dropped.
pub struct Mapping {
    map: MmapMut,
}

impl Mapping {
    pub fn new(len: usize) -> std::io::Result<Mapping> {
        let map = MmapOptions::new().len(len).no_reserve_swap().map_anon()?;
        Ok(Mapping { map })
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.map
    }

    /// Give the pages from `from` to the end back to the kernel now (MADV_DONTNEED; they
    /// read as zeros afterwards). `from` must be page-aligned.
    pub fn discard_from(&mut self, from: usize) -> std::io::Result<()> {
        super::raw::discard(&mut self.map[from..])
    }
}
