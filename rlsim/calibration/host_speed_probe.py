"""Single-core speed probe for host-side Python work: carries `calibration/host/`'s numbers
(one core of a shared AMD EPYC VM) over to another host.  Measure-only; stdlib + numpy
(+ torch, msgpack when present).  Kernels, each imitating per-request engine-step work:
py_sched (pure-Python scheduling/bookkeeping over 1024 request objects, like
Scheduler.schedule / update_from_output), sha256_blocks (vLLM's prefix-cache block hash:
sha256 of a pickled tuple, 256 blocks), numpy_small (the runner's index arithmetic on 8192
tokens), tolist ((1024, 8) int32 -> lists, as parse_output / logprob lists), torch_small
(small CPU-tensor ops with .item()), msgpack (1024 per-request records).  Median of
time.thread_time per call over 2 s per kernel.

Kept terse on purpose: this exact text ran on the lent H200 host as a one-line command
(gzip + base64, under the 2000-character limit), and here, so the two are comparable.
Run: python rlsim/calibration/host_speed_probe.py > probe.json
"""
import hashlib,pickle,time,json,os,platform,numpy as np
class R:
 __slots__=("rid","nc","nt","spec","out","blocks")
 def __init__(s,i):s.rid=f"req-{i}";s.nc=512+i%7;s.nt=s.nc+1;s.spec=[1,2,3];s.out=[];s.blocks=list(range(i,i+32))
rs=[R(i) for i in range(1024)];tb={r.rid:r for r in rs}
def ps():
 sc={};nb=[];b=16384
 for r in rs:
  n=min(r.nt+len(r.spec)-r.nc,b);b-=n;sc[r.rid]=n
  if (r.nc+n)//16>len(r.blocks):nb.append((r.rid,[len(r.blocks)]))
  r.nc+=n
 o=[]
 for rid,n in sc.items():
  r=tb[rid];t=[7]*(1+n%3)
  for x in t:
   r.out.append(x)
   if x==-5:break
  r.nc-=n;o.append({"request_id":rid,"new_token_ids":t,"finish":None})
  if len(r.out)>4096:del r.out[:2048]
bl=[tuple(range(i,i+16)) for i in range(256)]
def sh():
 p=b"\0"*32
 for x in bl:p=hashlib.sha256(pickle.dumps((p,x,None),protocol=5)).digest()
g=np.random.default_rng(0);nst=np.full(1024,8,np.int32);ncp=g.integers(500,4000,1024).astype(np.int32)
tok=g.integers(0,150000,(1024,4096)).astype(np.int32);ar=g.integers(0,150000,(1024,8)).astype(np.int32);A=np.arange(16384)
def nm():
 ri=np.repeat(A[:1024],nst);cu=np.cumsum(nst);of=np.repeat(cu-nst,nst);pos=ncp[ri]+(A[:cu[-1]]-of);np.take(tok.ravel(),pos+ri*4096)
K={"py_sched":ps,"sha256_blocks":sh,"numpy_small":nm,"tolist":lambda:ar.tolist()}
try:
 import torch;torch.set_num_threads(1);q0=torch.arange(0,4100,4,dtype=torch.int32);sq=torch.randint(500,4000,(1024,),dtype=torch.int32)
 def ts():
  for _ in range(5):q=q0[1:]-q0[:-1];q.max().item();sq.max().item();torch.from_numpy(nst)[:10].sum().item()
 K["torch_small"]=ts;tv=torch.__version__
except Exception:tv=None
try:
 import msgpack;rc=[{"request_id":f"r{i}","new_token_ids":[1,2,3],"finish_reason":None,"num_cached_tokens":0} for i in range(1024)];K["msgpack"]=lambda:msgpack.packb(rc)
except Exception:pass
res={}
for k,f in K.items():
 for _ in range(3):f()
 xs=[];te=time.perf_counter()+2
 while time.perf_counter()<te or len(xs)<20:
  t0=time.thread_time();f();xs.append(time.thread_time()-t0)
 xs.sort();res[k]={"median_s":xs[len(xs)//2],"p10_s":xs[len(xs)//10],"n":len(xs)}
print(json.dumps({"python":platform.python_version(),"numpy":np.__version__,"torch":tv,"cores":os.cpu_count(),"load":os.getloadavg()[0],"kernels":res}))
