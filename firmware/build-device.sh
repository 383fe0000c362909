#!/usr/bin/env bash
# Builds the ESP32 firmware release ELF, writes a flashable image with
# espflash (when installed) and prints the flash and static RAM sizes.
#
#   firmware/build-device.sh                 # ESP32-C3 (riscv32imc)
#   firmware/build-device.sh esp32c6         # ESP32-C6 (riscv32imac)
#   CHIP=esp32c6 firmware/build-device.sh    # the same, as before
#   firmware/build-device.sh esp32s3         # Xtensa: needs espup's toolchain
#
# Configuration: firmware/device.toml and firmware/fs/ (or the files named
# by $FLEETMQ_DEVICE_TOML and $FLEETMQ_DEVICE_FS). Output:
#   $CARGO_TARGET_DIR (default target)/<target>/firmware/fleetmq-device
#       the ELF (espflash flash --monitor --partition-table firmware/partitions.csv)
#   .../fleetmq-device.bin   the app image (espflash write-bin 0x10000)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$#" -gt 1 ]; then echo "usage: $0 [esp32c3|esp32c6|esp32|esp32s3]" >&2; exit 2; fi
chip="${1:-${CHIP:-esp32c3}}"
case "$chip" in
  esp32c3) target=riscv32imc-unknown-none-elf ;;
  esp32c6) target=riscv32imac-unknown-none-elf ;;
  esp32) target=xtensa-esp32-none-elf ;;
  esp32s3) target=xtensa-esp32s3-none-elf ;;
  *) echo "unknown chip $chip (esp32c3, esp32c6, esp32, esp32s3)" >&2; exit 2 ;;
esac

if [[ "$target" == riscv* ]]; then
  rustup target list --installed | grep -qx "$target" || rustup target add "$target"
fi

cargo build --locked -p fleetmq-firmware --profile firmware --target "$target" \
  --no-default-features --features "$chip" --bin fleetmq-device

elf="${CARGO_TARGET_DIR:-target}/$target/firmware/fleetmq-device"
echo "== $elf"
python3 firmware/tools/elf_size.py "$elf" --chip "$chip"

espflash="${ESPFLASH:-$(command -v espflash || true)}"
if [ -n "$espflash" ]; then
  "$espflash" save-image --chip "$chip" --partition-table firmware/partitions.csv "$elf" "$elf.bin"
  echo "image: $elf.bin ($(stat -c %s "$elf.bin") bytes)"
else
  echo "espflash not installed: no image written (cargo install espflash --locked)"
fi
