#!/usr/bin/env python3
"""Writes a BPF object file into a C++ source as a byte array, so the library carries the very
object it was built with and needs no file at run time."""
import sys

src, dst, symbol = sys.argv[1:4]
data = open(src, 'rb').read()
with open(dst, 'w') as out:
    out.write('// Generated from %s by embed.py.\n#include <cstddef>\n\n' % src.split('/')[-1])
    out.write('extern const unsigned char %s[];\nextern const std::size_t %s_size;\n' %
              (symbol, symbol))
    out.write('alignas(8) const unsigned char %s[] = {\n' % symbol)
    for i in range(0, len(data), 16):
        out.write('  ' + ', '.join(str(b) for b in data[i:i + 16]) + ',\n')
    out.write('};\nconst std::size_t %s_size = %d;\n' % (symbol, len(data)))
