import os
import tempfile

import torch

os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("WANDB_MODE", "offline")
# run records of test runs go to a temp dir, never into the checkout's results/records
os.environ.setdefault("CONVLAB_RECORDS", tempfile.mkdtemp(prefix="convlab-records-"))
torch.set_num_threads(min(2, torch.get_num_threads()))
