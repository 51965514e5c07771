"""Run by tests/data/test_data_stream.py under torchrun (two processes, gloo): each process streams
two epochs of a JPEG folder and writes the indices of the images it loaded, batch by batch,
beside those of the whole global batches."""
import json
import sys

import torch

from freezeout.data import load_data
from freezeout.distributed import process_group as distributed

torch.set_num_threads(1)
distributed.setup()
root, out = sys.argv[1], sys.argv[2]
opts = {"source": "image_folder", "name": "jpegs", "root": root, "loader": "stream", "workers": 1,
        "augment": "pad_crop_flip"}
stream = load_data(opts, torch.device("cpu")).stream
record = {"shares": {}, "single": {}}
for epoch in (1, 2):
    order = stream.order(0, epoch)
    record["shares"][epoch] = [i.tolist() for *_, i in stream.batches(order, 0, epoch, 32, 0, distributed.shard(),
                                                                        with_index=True)]
    record["single"][epoch] = [order[b * 32:(b + 1) * 32].tolist() for b in range(len(order) // 32)]
distributed.barrier()
with open(f"{out}/rank{distributed.rank()}.json", "w") as f:
    json.dump(record, f)
distributed.shutdown()
