"""Rewrites CUDA launches `k<<<grid, block, smem, stream>>>(args);` into emu::launch calls that
name their site (file:line); appends each site and its kernel to SITES, if given. Lines keep
their numbers and a #line directive names SRC, so compiler errors and sanitizer backtraces point
into csrc/cuda.
Usage: transform.py SRC DST [SITES]"""
import os, re, sys
pat = re.compile(r'([A-Za-z_][\w:]*(?:<[^;<>]*>)?)<<<(.*?)>>>\((.*?)\);', re.S)
src, dst = sys.argv[1], sys.argv[2]
s = open(src).read()
sites = []


def launch(m):
    site = f'{os.path.basename(src)}:{s.count(chr(10), 0, m.start()) + 1}'
    sites.append(f'{site} {" ".join(m.group(1).split())}')
    return f'::emu::launch("{site}", {m.group(2)}, [&] {{ {m.group(1)}({m.group(3)}); }});'


out = pat.sub(launch, s)
assert '<<<' not in out, src
open(dst, 'w').write(f'#line 1 "{os.path.abspath(src)}"\n' + out)
if len(sys.argv) > 3:
    with open(sys.argv[3], 'a') as f:
        f.writelines(line + '\n' for line in sites)
print(src, len(sites), 'launches')
