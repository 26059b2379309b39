# dmkit and Linux's dm-snapshot share one COW format, both ways:
#  - the same writes, once through `dmkit serve` (attached with nbd-client) and once through
#    Linux's snapshot/snapshot-origin targets, give the same contents and byte-identical COW
#    and origin images;
#  - Linux activates the COW dmkit wrote and reads the snapshot back; dmkit serves the COW Linux
#    wrote and reads it back, `dmkit snapshot inspect` lists its exceptions, `dmkit snapshot
#    merge` folds it into the origin; Linux's snapshot-merge folds dmkit's COW the same way.
. "$REPO/test/vm/guest/dmkit-serve.sh"
W=/tmp/snapshot-format
mkdir -p "$W/d" "$W/l"
SECTORS=32768            # origin: 16 MiB
CHUNK=8                  # 4 KiB chunks: 256 exceptions per metadata area
# "device sector count": partial and whole chunks, origin writes (copy-out), a chunk written
# twice, and a 2 MiB write whose 512 exceptions fill two metadata areas.
WRITES=("snap 3 1" "snap 16 8" "base 40 4" "snap 4096 4096" "base 12001 16" "base 4100 8" "snap 3 1" "snap 30000 24")

modprobe -a loop dm-mod dm-snapshot
modprobe nbd max_part=0  # no partition scan: nothing but the test reads the devices
head -c $((SECTORS * 512)) /dev/urandom > "$W/origin.orig"
head -c $((4 * 1024 * 1024)) /dev/urandom > "$W/payload"

# apply_writes SNAP_DEV BASE_DEV: the WRITES, in order, each one O_DIRECT write (the kernel may
# split it) that completes before the next starts.
apply_writes() {
  local i=0 w dev sector count
  for w in "${WRITES[@]}"; do
    read -r dev sector count <<< "$w"
    [ "$dev" = snap ] && dev=$1 || dev=$2
    dd if="$W/payload" of="$dev" bs=$((count * 512)) count=1 skip=$((i * 13 * 512)) seek=$((sector * 512)) \
      iflag=skip_bytes oflag=seek_bytes,direct conv=notrunc status=none || return 1
    i=$((i + 1))
  done
}

# The origin chunks the WRITES touch: what the COW must hold exceptions for.
touched_chunks() {
  local w dev sector count c
  for w in "${WRITES[@]}"; do
    read -r dev sector count <<< "$w"
    for ((c = sector / CHUNK; c <= (sector + count - 1) / CHUNK; c++)); do echo $c; done
  done | sort -n -u | tr '\n' ' '
}

# status_info LINE: the snapshot's own words of a status line ("1064/16384 32").
status_info() { cut -d' ' -f4- <<< "$1"; }

fresh_pair() {  # fresh_pair SIDE: origin and a zeroed COW (a zeroed COW starts a new snapshot)
  cp "$W/origin.orig" "$W/origin-$1.img" && rm -f "$W/cow-$1.img" && truncate -s 8M "$W/cow-$1.img"
}

write_with_dmkit() {
  fresh_pair d &&
  serve_start "$W/d" --quiet \
    --device base "0 $SECTORS snapshot-origin $W/origin-d.img" \
    --device snap "0 $SECTORS snapshot $W/origin-d.img $W/cow-d.img P $CHUNK" || return 1
  local ok=0
  nbd_attach snap /dev/nbd0 && nbd_attach base /dev/nbd1 &&
    apply_writes /dev/nbd0 /dev/nbd1 &&
    SNAP_D=$(sha_of /dev/nbd0) && BASE_D=$(sha_of /dev/nbd1) &&
    STATUS_D=$(status_info "$(dmkit_ctl status snap)") || ok=1
  # Which path the origin's first writes took (the receive threads copy them with one snapshot).
  echo "dmkit: $(dmkit_ctl exports | grep '^base')"
  nbd_detach /dev/nbd0; nbd_detach /dev/nbd1
  serve_stop || ok=1
  echo "dmkit: snapshot status '$STATUS_D'"
  return $ok
}

write_with_linux() {
  fresh_pair l || return 1
  local o c ok=0
  o=$(losetup -f --show "$W/origin-l.img") && c=$(losetup -f --show "$W/cow-l.img") || return 1
  dmsetup create sf-snap --table "0 $SECTORS snapshot $o $c P $CHUNK" &&
    dmsetup create sf-base --table "0 $SECTORS snapshot-origin $o" &&
    apply_writes /dev/mapper/sf-snap /dev/mapper/sf-base &&
    SNAP_L=$(sha_of /dev/mapper/sf-snap) && BASE_L=$(sha_of /dev/mapper/sf-base) &&
    STATUS_L=$(status_info "$(dmsetup status sf-snap)") || ok=1
  dmsetup remove sf-base; dmsetup remove sf-snap
  losetup -d "$o" "$c"
  echo "linux: snapshot status '$STATUS_L'"
  return $ok
}

same_contents() {
  [ "$SNAP_D" != "$(sha_of "$W/origin.orig")" ] || { echo "the writes changed nothing"; return 1; }
  same "snapshot contents" "$SNAP_D" "$SNAP_L" && same "origin contents" "$BASE_D" "$BASE_L" &&
    same "snapshot status" "$STATUS_D" "$STATUS_L"
}

identical() {  # identical FILE_A FILE_B
  cmp "$1" "$2" && return 0
  echo "first differing bytes (offset, octal values):"; cmp -l "$1" "$2" | head -8
  return 1
}

linux_reads_dmkit_cow() {
  local o c got status ok=0
  o=$(losetup -f --show "$W/origin-d.img") && c=$(losetup -f --show "$W/cow-d.img") || return 1
  dmsetup create sf-check --table "0 $SECTORS snapshot $o $c P $CHUNK" &&
    got=$(sha_of /dev/mapper/sf-check) && status=$(status_info "$(dmsetup status sf-check)") &&
    same "snapshot contents" "$got" "$SNAP_D" && same "status" "$status" "$STATUS_D" || ok=1
  dmsetup remove sf-check
  losetup -d "$o" "$c"
  return $ok
}

dmkit_reads_linux_cow() {
  serve_start "$W/l" --quiet --device snap "0 $SECTORS snapshot $W/origin-l.img $W/cow-l.img P $CHUNK" || return 1
  local got status ok=0
  nbd_attach snap /dev/nbd0 && got=$(sha_of /dev/nbd0) && status=$(status_info "$(dmkit_ctl status snap)") &&
    same "snapshot contents" "$got" "$SNAP_L" && same "status" "$status" "$STATUS_L" || ok=1
  nbd_detach /dev/nbd0
  serve_stop || ok=1
  return $ok
}

# inspect_says COW EXPECTED_USAGE EXPECTED_CHUNKS: dmkit snapshot inspect --json agrees.
inspect_says() {
  node "$REPO/bin/dmkit.js" snapshot inspect "$1" --json > "$W/inspect.json" || return 1
  node -e '
    const [usage, chunks] = process.argv.slice(1);
    const info = JSON.parse(require("fs").readFileSync(process.argv[3], "utf8"));
    const u = info.usage, got = info.exceptions.map((e) => e.old).sort((a, b) => a - b).join(" ");
    const problems = [];
    if (info.chunkSize !== 8) problems.push(`chunk size ${info.chunkSize}, expected 8`);
    if (info.valid !== true) problems.push("not valid");
    if (`${u.allocated}/${u.total} ${u.metadata}` !== usage) problems.push(`usage ${u.allocated}/${u.total} ${u.metadata}, expected ${usage}`);
    if (got !== chunks.trim()) problems.push(`exceptions for chunks [${got}], expected [${chunks.trim()}]`);
    if (problems.length) { console.log(problems.join("; ")); process.exit(1); }
  ' "$2" "$3" "$W/inspect.json"
}

dmkit_merges_linux_cow() {
  node "$REPO/bin/dmkit.js" snapshot merge --origin "$W/origin-l.img" --cow "$W/cow-l.img" --quiet &&
    same "merged origin" "$(sha_of "$W/origin-l.img")" "$SNAP_L" || return 1
  node "$REPO/bin/dmkit.js" snapshot inspect "$W/cow-l.img" --json |
    node -e 'const i = JSON.parse(require("fs").readFileSync(0, "utf8"));
      if (i.exceptions.length) { console.log(`${i.exceptions.length} exceptions left after the merge`); process.exit(1); }'
}

linux_merges_dmkit_cow() {
  local o c info i ok=1
  o=$(losetup -f --show "$W/origin-d.img") && c=$(losetup -f --show "$W/cow-d.img") || return 1
  if dmsetup create sf-merge --table "0 $SECTORS snapshot-merge $o $c P $CHUNK"; then
    for i in $(seq 600); do
      info=$(status_info "$(dmsetup status sf-merge)")
      if [[ $info =~ ^([0-9]+)/[0-9]+\ ([0-9]+)$ ]] && [ "${BASH_REMATCH[1]}" = "${BASH_REMATCH[2]}" ]; then
        ok=0; break
      fi
      case $info in Invalid|"Merge failed") echo "merge status: $info"; break ;; esac
      sleep 0.1
    done
    [ $ok -eq 0 ] || echo "the merge did not finish: '$info'"
    [ $ok -eq 0 ] && { same "merged device contents" "$(sha_of /dev/mapper/sf-merge)" "$SNAP_D" || ok=1; }
    dmsetup remove sf-merge
  fi
  losetup -d "$o" "$c"
  [ $ok -eq 0 ] && same "merged origin" "$(sha_of "$W/origin-d.img")" "$SNAP_D"
}

# after D L CMD...: runs CMD only if the COW images it needs were written (D: by dmkit, L: by
# Linux; "-" for not needed), so a broken writer shows as one clear cause, not a cascade.
after() {
  local d=$1 l=$2; shift 2
  [ "$d" = - ] || [ -n "$SNAP_D" ] || { echo "not checked: writing through dmkit failed"; return 1; }
  [ "$l" = - ] || [ -n "$SNAP_L" ] || { echo "not checked: writing through Linux failed"; return 1; }
  "$@"
}

SNAP_D="" SNAP_L="" STATUS_D="" STATUS_L="" BASE_D="" BASE_L=""
check "same-writes-through-dmkit-serve" write_with_dmkit || SNAP_D=""
check "same-writes-through-linux-snapshot" write_with_linux || SNAP_L=""
check "dmkit-and-linux-give-same-contents" after D L same_contents
check "cow-byte-identical-dmkit-vs-linux" after D L identical "$W/cow-d.img" "$W/cow-l.img"
check "origin-byte-identical-dmkit-vs-linux" after D L identical "$W/origin-d.img" "$W/origin-l.img"
check "linux-snapshot-reads-dmkit-cow" after D - linux_reads_dmkit_cow
check "dmkit-serve-reads-linux-cow" after - L dmkit_reads_linux_cow
check "dmkit-inspect-reads-linux-cow" after - L inspect_says "$W/cow-l.img" "$STATUS_L" "$(touched_chunks)"
check "dmkit-merge-folds-linux-cow" after - L dmkit_merges_linux_cow
check "linux-merge-folds-dmkit-cow" after D - linux_merges_dmkit_cow
check "cow-byte-identical-after-merges" after D L identical "$W/cow-d.img" "$W/cow-l.img"
