# husk and husk-serve's one GNU build id (CMakeLists.txt): a SHA-1 over the
# runtime libraries and the CLI sources, written as a linker option
# (--build-id=0x...) to OUT. Snapshots record the build id of the program
# that made them (snapshot::build_id) and are restored only by the same
# one: with one id, a snapshot made by `husk snapshot create` or `husk run`
# is restored by `husk serve` too, as when serve was part of husk.
# Arguments: -DINPUTS=a|b|c (files) -DOUT=file.
string(REPLACE "|" ";" inputs "${INPUTS}")
list(SORT inputs)
set(all "")
foreach(input ${inputs})
  file(SHA1 ${input} one)
  string(APPEND all "${one}\n")
endforeach()
string(SHA1 id "${all}")
file(WRITE ${OUT}.new "--build-id=0x${id}\n")
file(COPY_FILE ${OUT}.new ${OUT} ONLY_IF_DIFFERENT)
file(REMOVE ${OUT}.new)
