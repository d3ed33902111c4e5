//! Anonymous memory for the memory ballast (memmap2: VirtualAlloc'd, freed when dropped).
use memmap2::{MmapMut, MmapOptions};

pub struct Mapping {
    map: MmapMut,
}

impl Mapping {
    pub fn new(len: usize) -> std::io::Result<Mapping> {
        Ok(Mapping {
            map: MmapOptions::new().len(len).map_anon()?,
        })
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.map
    }

    /// Giving pages back one by one is a later step on Windows (DiscardVirtualMemory);
    /// the memory worker frees the whole mapping instead.
    pub fn discard_from(&mut self, _from: usize) -> std::io::Result<()> {
        Err(super::not_yet("giving part of a mapping back"))
    }
}
