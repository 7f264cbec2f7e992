#!/usr/bin/env bash
# pack_results.sh DIR: put every file under DIR into DIR/session.tar.gz and keep beside it
# only session.log (the run's own account, readable without unpacking).
#
# Why: the device tool brings back at most 8 files from $OUT, none more than 2 folders down,
# and drops the rest without running anything again; a full GPU session writes more than
# that (session.log, each stage's JSON, a results folder of three). One archive always comes
# back. The originals are removed only once the archive is written and lists them all, so
# a failure here leaves the folder as it was.
set -euo pipefail
dir=${1:?usage: pack_results.sh DIR}
cd "$dir"
archive=session.tar.gz
if [ -e "$archive" ]; then
    echo "pack_results.sh: $dir/$archive exists already; left as it is" >&2
    exit 1
fi
mapfile -t files < <(find . -type f ! -name "$archive" | sed 's|^\./||' | LC_ALL=C sort)
[ ${#files[@]} -eq 0 ] && exit 0
tar -czf "$archive.part" -- "${files[@]}"
mapfile -t packed < <(tar -tzf "$archive.part" | LC_ALL=C sort)
if [ "${packed[*]}" != "${files[*]}" ]; then
    echo "pack_results.sh: the archive does not list every file; left unpacked" >&2
    rm -f "$archive.part"
    exit 1
fi
mv "$archive.part" "$archive"
for f in "${files[@]}"; do
    [ "$f" = session.log ] || rm -f -- "$f"
done
find . -mindepth 1 -type d -empty -delete
echo "packed ${#files[@]} files into $dir/$archive"
