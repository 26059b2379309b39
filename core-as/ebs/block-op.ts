// One ebs request piece that the device cannot take as it is (the dm-bufio path of dm-ebs).
//
// A clone covering [s, e) in device sectors touches blocks hb..tb. The blocks it covers fully go
// to the device directly, in one command from or into the caller's buffer; a block it covers
// only in part (the head, the tail, or one block holding both) goes through a bounce buffer of
// one whole block: read it, then for a READ copy the wanted sectors out, for a WRITE copy the new
// sectors in and write the whole block back. So the device only ever sees whole blocks.
// A whole-block write (DIRECT) is also an op here, only so that it takes part in the ordering.
import { Io, submitInternal, resumeDeferred, OP_READ, OP_WRITE } from "../io";
import { MAP_REMAPPED, MAP_SUBMITTED } from "../target";
import { DevRef } from "../devref";
import { OrderedWrite, WriteOrder } from "./write-order";
import { Blocks } from "./blocks";
import { allocData, freeData } from "../data-buffer";

export const KIND_DIRECT: u8 = 0;     // whole blocks, the clone itself goes to the device
export const KIND_SPLIT_READ: u8 = 1;
export const KIND_SPLIT_WRITE: u8 = 2;

// Internal I/O steps (io.cookie).
const STEP_MIDDLE: i64 = 0;
const STEP_HEAD_READ: i64 = 1;
const STEP_HEAD_WRITE: i64 = 2;
const STEP_TAIL_READ: i64 = 3;
const STEP_TAIL_WRITE: i64 = 4;

export class BlockOp extends OrderedWrite {
  kind: u8 = KIND_DIRECT;
  clone: Io = changetype<Io>(0);
  dev: DevRef = changetype<DevRef>(0);
  blocks: Blocks = changetype<Blocks>(0);
  order: WriteOrder = changetype<WriteOrder>(0);
  /** The clone's range on the device. */
  start: u64 = 0;
  stop: u64 = 0;
  private pending: i32 = 0;
  private status: i32 = 0;
  private headBuf: usize = 0;
  private tailBuf: usize = 0;

  /** Sets up an op for `clone` over device sectors [start, stop); first/end are its blocks. */
  init(kind: u8, clone: Io, dev: DevRef, blocks: Blocks, order: WriteOrder, start: u64, stop: u64): void {
    this.kind = kind;
    this.clone = clone;
    this.dev = dev;
    this.blocks = blocks;
    this.order = order;
    this.start = start;
    this.stop = stop;
    this.first = blocks.blockOf(start);
    this.end = blocks.blockOf(stop - 1) + 1;
    this.rmw = kind == KIND_SPLIT_WRITE;
    this.pending = 0;
    this.status = 0;
  }

  go(): void {
    if (this.kind == KIND_DIRECT) resumeDeferred(this.clone, MAP_REMAPPED);
    else this.startSplit();
  }

  /** Issues the whole-block middle and the bounce reads of partial head and tail blocks. */
  startSplit(): void {
    const b = this.blocks;
    const headBlock = this.first;
    const tailBlock = this.end - 1;
    const headPartial = !b.isAligned(this.start) || (headBlock == tailBlock && !b.isAligned(this.stop));
    const tailPartial = tailBlock != headBlock && !b.isAligned(this.stop);
    const middleFirst = headPartial ? headBlock + 1 : headBlock;
    const middleEnd = tailPartial ? tailBlock : tailBlock + 1;
    const bytes = <usize>b.size << 9;
    this.pending = 1; // held while issuing, so pieces that finish at once cannot finish the op
    if (headPartial) {
      this.headBuf = allocData(bytes);
      this.issue(OP_READ, 0, headBlock, 1, this.headBuf, STEP_HEAD_READ);
    }
    if (tailPartial) {
      this.tailBuf = allocData(bytes);
      this.issue(OP_READ, 0, tailBlock, 1, this.tailBuf, STEP_TAIL_READ);
    }
    if (middleEnd > middleFirst) {
      const at = this.clone.buf + (<usize>(b.firstSector(middleFirst) - this.start) << 9);
      const op = this.kind == KIND_SPLIT_READ ? OP_READ : OP_WRITE;
      this.issue(op, this.clone.flags, middleFirst, middleEnd - middleFirst, at, STEP_MIDDLE);
    }
    this.pieceDone(0);
  }

  private issue(op: u32, flags: u32, block: u64, count: u64, buf: usize, step: i64): void {
    this.pending++;
    const b = this.blocks;
    submitInternal(this, this.dev, op, flags, b.firstSector(block), <u32>(count << <u64>b.shift), buf, step);
  }

  ioDone(io: Io, status: i32): void {
    const step = io.cookie;
    if (status == 0 && (step == STEP_HEAD_READ || step == STEP_TAIL_READ)) {
      const head = step == STEP_HEAD_READ;
      const block = head ? this.first : this.end - 1;
      const buf = head ? this.headBuf : this.tailBuf;
      if (this.kind == KIND_SPLIT_READ) {
        this.copyPart(block, buf, false);
      } else {
        this.copyPart(block, buf, true);
        // The read's pending count carries over to the write of the merged block.
        const b = this.blocks;
        submitInternal(this, this.dev, OP_WRITE, this.clone.flags, b.firstSector(block), <u32>b.size, buf,
          head ? STEP_HEAD_WRITE : STEP_TAIL_WRITE);
        return;
      }
    }
    this.pieceDone(status);
  }

  /** Copies the clone's sectors inside `block` between the clone's buffer and the block's bounce buffer. */
  private copyPart(block: u64, blockBuf: usize, intoBlock: bool): void {
    const b = this.blocks;
    const blockStart = b.firstSector(block);
    const from = this.start > blockStart ? this.start : blockStart;
    const blockEnd = blockStart + b.size;
    const to = this.stop < blockEnd ? this.stop : blockEnd;
    const inClone = this.clone.buf + (<usize>(from - this.start) << 9);
    const inBlock = blockBuf + (<usize>(from - blockStart) << 9);
    const bytes = <usize>(to - from) << 9;
    if (intoBlock) memory.copy(inBlock, inClone, bytes);
    else memory.copy(inClone, inBlock, bytes);
  }

  private pieceDone(status: i32): void {
    if (status != 0 && this.status == 0) this.status = status;
    this.pending--;
    if (this.pending > 0) return;
    if (this.headBuf != 0) freeData(this.headBuf);
    if (this.tailBuf != 0) freeData(this.tailBuf);
    this.headBuf = 0;
    this.tailBuf = 0;
    if (this.kind == KIND_SPLIT_WRITE) this.order.leave(this);
    const clone = this.clone;
    clone.status = this.status;
    this.clone = changetype<Io>(0);
    resumeDeferred(clone, MAP_SUBMITTED);
    opPool.push(this);
  }
}

// Ops are reused: steady-state I/O allocates no managed objects (see gc.ts).
const opPool = new Array<BlockOp>();

export function getBlockOp(): BlockOp {
  return opPool.length > 0 ? opPool.pop() : new BlockOp();
}

/** A DIRECT op is finished by its clone's end_io, not by pieceDone. */
export function putBlockOp(op: BlockOp): void {
  op.clone = changetype<Io>(0);
  opPool.push(op);
}
