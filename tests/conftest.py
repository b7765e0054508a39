import os
import tempfile

import pytest
import torch

os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("WANDB_MODE", "offline")
# run records of test runs go to a temp dir, never into the checkout's results/records
os.environ.setdefault("CONVLAB_RECORDS", tempfile.mkdtemp(prefix="convlab-records-"))
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture
def exact_fp32_cuda():
    """Full-fp32 CUDA convs and matmuls while a test compares CUDA with the CPU. cuDNN's default for fp32
    convolutions on Ampere and later is TF32 (10 mantissa bits): 1e-3 differences that are not bugs."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
