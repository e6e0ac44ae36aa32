# go-md2man's tables keep short cells on one line and give the columns no width, so a wide
# Markdown table runs off an 80-column terminal. This makes the last column (the description)
# take the width the others leave ("lx"), and every cell a text block (T{ ... T}), which tbl wraps.

# cells(TEXT, FIRST): TEXT's tab-separated cells as text blocks; a trailing "T{" opens a block
# that go-md2man continues on the next lines.
function cells(text, first,    n, parts, i, out) {
  n = split(text, parts, "\t")
  out = ""
  for (i = 1; i <= n; i++) {
    if (i == 1 && !first) continue  # the text after "T}" starts with the tab before its cell
    if (out != "" || !first) out = out "\t"
    if (parts[i] == "T{" && i == n) { out = out "T{"; block = 1 }
    else out = out "T{\n" parts[i] "\nT}"
  }
  return out
}
/^\.TS/ { table = 1; format = 1; print; next }
/^\.TE/ { table = 0; print; next }
!table { print; next }
format {
  line = $0
  # The last column takes the width left; not in the options line ("allbox;").
  if (line !~ /;$/ && !sub(/l \.$/, "lx .", line)) sub(/l$/, "lx", line)
  print line
  if ($0 ~ /\.$/) format = 0
  next
}
block {
  if ($0 !~ /^T\}/) { print; next }
  block = 0
  print "T}" cells(substr($0, 3), 0)
  next
}
{ print cells($0, 1) }
