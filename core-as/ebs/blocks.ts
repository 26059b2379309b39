// Sector <-> underlying block arithmetic for ebs: the block size is a power of two (sectors).

export class Blocks {
  /** Sectors per underlying block, and its log2. */
  constructor(public size: u64, public shift: u32) {}

  blockOf(sector: u64): u64 {
    return sector >> <u64>this.shift;
  }

  firstSector(block: u64): u64 {
    return block << <u64>this.shift;
  }

  /** Where a sector sits inside its block (0 when it starts one). */
  offsetIn(sector: u64): u64 {
    return sector & (this.size - 1);
  }

  isAligned(sector: u64): bool {
    return this.offsetIn(sector) == 0;
  }

  /** The first block starting at or after `sector`. */
  blockAtOrAfter(sector: u64): u64 {
    return this.blockOf(sector) + (this.isAligned(sector) ? 0 : 1);
  }

  /** `sectors` rounded up to a whole number of blocks. */
  roundUp(sectors: u64): u64 {
    return this.firstSector(this.blockAtOrAfter(sectors));
  }
}
