#!/usr/bin/env python3
"""rootfs/kernel/sparse_text.py IN OUT: writes the vmlinux IN to OUT with its
text segment's alignment filler as holes.

The x86-64 linker script starts the entry text and the code after it on 2 MiB
boundaries, and fills the gaps with int3 bytes (0xcc): about 3 MiB of the
text segment of husk's kernel is filler that the guest never executes. A page
of 4096 int3 bytes is never code, so each such page of an executable PT_LOAD
segment becomes zero, and every zero page of OUT a hole: the VMM reads only
a file's data (SEEK_DATA) into the zeroed memory of a new VM, so the filler is
neither copied nor, where a whole 2 MiB of guest memory holds next to nothing
else, backed by a huge page the host must clear first (runtime/memory/
guest_memory.h). Nothing else changes: the ELF headers, every segment's
addresses and sizes, and every byte that is not filler stay as they were.
"""
import struct
import sys

PAGE = 4096
PT_LOAD = 1
PF_X = 1


def filler_pages(image):
    """Yields the file offsets of whole int3 pages in executable segments."""
    if image[:4] != b"\x7fELF" or image[4] != 2 or image[5] != 1:
        sys.exit("sparse_text.py: not a little-endian 64-bit ELF file")
    phoff, = struct.unpack_from("<Q", image, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", image, 0x36)
    filler = b"\xcc" * PAGE
    for i in range(phnum):
        p_type, p_flags, p_offset, _, _, p_filesz = struct.unpack_from("<IIQQQQ", image, phoff + i * phentsize)
        if p_type != PT_LOAD or not p_flags & PF_X:
            continue
        first = -(-p_offset // PAGE) * PAGE
        for at in range(first, p_offset + p_filesz - PAGE + 1, PAGE):
            if image[at:at + PAGE] == filler:
                yield at


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: sparse_text.py IN OUT")
    with open(sys.argv[1], "rb") as f:
        image = bytearray(f.read())
    pages = list(filler_pages(image))
    for at in pages:
        image[at:at + PAGE] = bytes(PAGE)
    zero = bytes(PAGE)
    holes = 0
    with open(sys.argv[2], "wb") as out:
        for at in range(0, len(image), PAGE):
            chunk = image[at:at + PAGE]
            if chunk == zero[:len(chunk)]:
                out.seek(len(chunk), 1)
                holes += 1
            else:
                out.write(chunk)
        out.truncate(len(image))
    print(f"sparse_text.py: {len(pages)} pages of int3 filler zeroed; {holes} of {-(-len(image) // PAGE)} "
          f"pages are holes", file=sys.stderr)


if __name__ == "__main__":
    main()
