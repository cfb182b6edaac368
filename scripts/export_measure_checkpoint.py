"""Write a randomly initialised resnet_9blocks generator (ngf 64, seed 0) as a checkpoint folder with config.json,
for measuring export.py's exported-vs-eager differences on a real photo (docs/export.md, "The check")."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from models import arch_config, checkpoint_io, networks  # noqa: E402


def main() -> None:
    """``python scripts/export_measure_checkpoint.py DIR``: writes DIR/random_resnet/latest_net_G.pth."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("checkpoints_dir")
    args = parser.parse_args()
    torch.manual_seed(0)
    net = networks.define_G(3, 3, 64, "resnet_9blocks", "instance", False)
    folder = Path(args.checkpoints_dir) / "random_resnet"
    folder.mkdir(parents=True, exist_ok=True)
    checkpoint_io.save_weights(checkpoint_io.plain_state_dict(net), folder / "latest_net_G.pth")
    spec = {"kind": "G", "netG": "resnet_9blocks", "input_nc": 3, "output_nc": 3, "ngf": 64, "norm": "instance",
            "use_dropout": False}
    opt = argparse.Namespace(model="test", netG="resnet_9blocks", norm="instance", ngf=64, input_nc=3, output_nc=3)
    arch_config.write_config(str(folder), arch_config.build_config(opt, {"G": spec}))
    print(folder)


if __name__ == "__main__":
    main()
