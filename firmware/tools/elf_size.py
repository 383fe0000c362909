#!/usr/bin/env python3
"""Flash and static RAM use of an ESP32 firmware ELF, like `size`.

Reads the ELF section headers itself (no binutils for the device target is
needed). Flash: every allocated section with file contents, as it is
written into the image (code, read-only data and the initial values of
.data). Static RAM: allocated sections placed in the chip's internal RAM
(IRAM code, .data, .bss, including the heap arrays the firmware declares),
without the linker's stack region and the unused second DRAM bank.

usage: elf_size.py FIRMWARE.elf [--chip esp32c3]
"""

import struct
import sys

# Internal RAM address windows (data bus and instruction bus, RTC RAM).
RAM_WINDOWS = {
    "esp32c3": [(0x3FC80000, 0x3FCE0000), (0x4037C000, 0x403E0000), (0x50000000, 0x50002000)],
    "esp32c6": [(0x40800000, 0x40880000), (0x50000000, 0x50004000)],
    "esp32": [(0x3FFAE000, 0x40000000), (0x40070000, 0x400A0000), (0x3FF80000, 0x3FF82000)],
    "esp32s3": [(0x3FC88000, 0x3FD00000), (0x40370000, 0x403E0000), (0x50000000, 0x50002000)],
}
# Linker regions that reserve RAM rather than use it.
NOT_STATIC = {".stack", ".dram2_uninit", ".noinit"}
SHF_ALLOC = 0x2
SHT_NOBITS = 8


def sections(data):
    if data[:4] != b"\x7fELF" or data[4] != 1:
        raise SystemExit("not a 32-bit ELF file")
    endian = "<" if data[5] == 1 else ">"
    shoff, = struct.unpack_from(endian + "I", data, 0x20)
    shentsize, shnum, shstrndx = struct.unpack_from(endian + "HHH", data, 0x2E)
    headers = [
        struct.unpack_from(endian + "IIIIIIIIII", data, shoff + i * shentsize)
        for i in range(shnum)
    ]
    names_off = headers[shstrndx][4]
    for name_off, kind, flags, addr, _off, size, *_ in headers:
        end = data.index(b"\0", names_off + name_off)
        yield data[names_off + name_off:end].decode(), kind, flags, addr, size


def main():
    args = sys.argv[1:]
    chip = "esp32c3"
    if "--chip" in args:
        chip = args[args.index("--chip") + 1]
    path = args[0]
    windows = RAM_WINDOWS[chip]
    with open(path, "rb") as f:
        data = f.read()
    flash = ram = 0
    rows = []
    for name, kind, flags, addr, size in sections(data):
        if not flags & SHF_ALLOC or size == 0 or name.endswith("_dummy"):
            continue
        in_ram = any(lo <= addr < hi for lo, hi in windows)
        in_flash = kind != SHT_NOBITS
        counted_ram = in_ram and name not in NOT_STATIC
        flash += size if in_flash else 0
        ram += size if counted_ram else 0
        where = "flash+RAM" if in_flash and counted_ram else "flash" if in_flash else "RAM" if counted_ram else "reserved"
        rows.append((name, size, addr, where))
    print(f"{'section':<24}{'bytes':>10}  {'address':>10}  counted as")
    for name, size, addr, where in rows:
        print(f"{name:<24}{size:>10}  {addr:#010x}  {where}")
    print(f"flash (image contents): {flash} bytes ({flash / 1024:.1f} KiB)")
    print(f"static RAM (data, bss, IRAM code, heap arrays): {ram} bytes ({ram / 1024:.1f} KiB)")


if __name__ == "__main__":
    main()
