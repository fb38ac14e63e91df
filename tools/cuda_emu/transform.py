"""Rewrites CUDA launches `k<<<grid, block, smem, stream>>>(args);` into emu::launch calls."""
import re, sys
pat = re.compile(r'([A-Za-z_][\w:]*(?:<[^;<>]*>)?)<<<(.*?)>>>\((.*?)\);', re.S)
src, dst = sys.argv[1], sys.argv[2]
s = open(src).read()
s, n = pat.subn(lambda m: f'::emu::launch({m.group(2)}, [&] {{ {m.group(1)}({m.group(3)}); }});', s)
assert '<<<' not in s, src
open(dst, 'w').write(s)
print(src, n, 'launches')
