#!/usr/bin/env bash
# Install the five peer frameworks that `rlspec check verl|trl|openrlhf|liger|areal|all` calls, CPU only,
# into the Python environment that is active (a venv or a tox env). Pinned versions; no CUDA torch,
# no flash-attn or triton builds. Each framework goes in with --no-deps and only the dependencies its
# loss / advantage / KL modules import, because their full dependency lists pull CUDA builds.
set -euo pipefail
PY=${PYTHON:-python}
pip_() { "$PY" -m pip install -q "$@"; }

pip_ torch==2.13.0                      # the CPU build must be in place before anything else
pip_ numpy packaging
# verl 0.9.1: core_algos imports ray, tensordict, omegaconf/hydra and transformers (< 5.11)
pip_ --no-deps verl==0.9.1
pip_ ray "tensordict>=0.8.0,<=0.10.0,!=0.9.0" omegaconf hydra-core "transformers==5.10.4" codetiming
# verl's workers and trainer modules (ActorRolloutRefWorker, ray_trainer) also import these at load time
pip_ uvicorn fastapi cachetools
# trl 1.16.0: the GRPO loss is a trainer method
pip_ --no-deps trl==1.16.0
pip_ "accelerate>=1.10.1" "datasets>=4.7.0" pandas "pyarrow>=21.0.0" psutil pyyaml
# openrlhf 0.11.2: leaf modules only (flash-attn cannot build without CUDA); deepspeed is a pure-python wheel here
pip_ --no-deps openrlhf==0.11.2
pip_ --no-deps --no-build-isolation deepspeed==0.19.6
pip_ einops hjson ninja py-cpuinfo "pydantic>=2" peft pylatexenc
# liger-kernel 0.8.5: the chunked_loss path is plain torch (the Triton path needs a GPU)
pip_ --no-deps liger-kernel==0.8.5
# areal 1.0.4: areal.utils.functional and what `import areal` needs
pip_ --no-deps areal==1.0.4
pip_ aiohttp uvloop colorlog tenacity flask torchdata lark numba pillow aiofiles openai
# transformers 5.10.4 imports `kernels` when present and supports only 0.12.x (its own extra pins it); a newer
# release pulled in by a dependency breaks `import transformers` models ("Either a revision or a version ...")
pip_ "kernels>=0.12.0,<0.13"
"$PY" -c "import torch, sys; v = torch.__version__; print('torch', v); sys.exit(0 if v.endswith('+cpu') else 'a non-CPU torch was installed: ' + v)"
