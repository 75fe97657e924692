"""The nines network in PyTorch, the peer that `nines bench train` is
measured against: the same architecture as offboard/src/model.rs (presets,
layers, input stack, output transforms), the same losses as
offboard/src/training/loss.rs, the same step (batch uploaded from host
memory, forward, losses read back, backward, gradient-norm clip, AdamW,
with the training defaults) on synthetic batches of the contract's shapes.

    torch_model.py describe --preset tiny [--contract contract.json]
        parameter count (as burn counts: batch norm's running statistics
        included) and output shapes (JSON), checked against burn by
        tests/tests/peer_torch.rs
    torch_model.py train --preset default --batch-sizes 32,128 --device cuda
        images/s after warm-up, one JSON object per batch size

The contract (input size, stacked frames, plan times) is read from a JSON
file written by nines (`--contract`), or is nines' default contract."""

import argparse
import json
import math
import sys
import time

import torch
from torch import nn
import torch.nn.functional as F

# offboard/src/model.rs
DEPTH_RANGE_M = (0.5, 120.0)
SPEED_SCALE = 0.1
LEAD_DISTANCE = (20.0, 10.0)
LEAD_SPEED_SCALE = 5.0
PLAN_SQUEEZE = 8
PRESETS = {"tiny": ((8, 16, 24, 32), 64), "default": ((24, 48, 96, 160), 128)}
# nines_datasets::contract::ModelContract::default()
DEFAULT_CONTRACT = {"width": 256, "height": 128, "frames": 2, "plan_times": [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]}
# offboard/src/training/config.rs TrainConfig::default(), as nines bench train uses it
TRAIN = {"learning_rate": 2e-3, "weight_decay": 1e-4, "grad_clip": 5.0}
# offboard/src/training/config.rs LossWeights::default() and metrics::DEPTH_CAP_M
LOSS_WEIGHTS = {"depth": 1.0, "plan": 1.0, "lead": 0.5, "plan_lateral": 1.0}
DEPTH_CAP_M = 80.0


class ConvBn(nn.Module):
    """Convolution (no bias), batch norm, ReLU."""

    def __init__(self, cin, cout, stride, kernel=3):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False)
        self.norm = nn.BatchNorm2d(cout)

    def linear(self, x):
        return self.norm(self.conv(x))

    def forward(self, x):
        return F.relu(self.linear(x))


class Residual(nn.Module):
    """Two 3x3 convolutions with an identity shortcut."""

    def __init__(self, channels):
        super().__init__()
        self.a = ConvBn(channels, channels, 1)
        self.b = ConvBn(channels, channels, 1)

    def forward(self, x):
        return F.relu(self.b.linear(self.a(x)) + x)


class Model(nn.Module):
    def __init__(self, preset, contract):
        super().__init__()
        (c1, c2, c3, c4), hidden = PRESETS[preset]
        width, height, frames = contract["width"], contract["height"], contract["frames"]
        times = contract["plan_times"]
        self.steps = len(times)
        flat = PLAN_SQUEEZE * (height // 16) * (width // 16)
        self.stem = ConvBn(3 * frames, c1, 2)
        self.down2 = ConvBn(c1, c2, 2)
        self.block2 = Residual(c2)
        self.down3 = ConvBn(c2, c3, 2)
        self.block3 = Residual(c3)
        self.down4 = ConvBn(c3, c4, 2)
        self.block4 = Residual(c4)
        self.up3 = ConvBn(c4, c3, 1)
        self.up2 = ConvBn(c3, c2, 1)
        self.depth_out = nn.Conv2d(c2, 1, 3, stride=1, padding=1, bias=True)
        self.squeeze = ConvBn(c4, PLAN_SQUEEZE, 1, kernel=1)
        self.fc1 = nn.Linear(flat + 1, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.plan_out = nn.Linear(hidden, 3 * self.steps)
        nn.init.zeros_(self.plan_out.weight)
        nn.init.zeros_(self.plan_out.bias)
        self.lead_out = nn.Linear(hidden, 3)
        basis = torch.tensor([[t, 0.0, 1.0] for t in times], dtype=torch.float32)
        self.register_buffer("plan_basis", basis.reshape(1, self.steps, 3), persistent=False)
        self.register_buffer("lead_scale", torch.tensor([[1.0, LEAD_DISTANCE[1], LEAD_SPEED_SCALE]]), persistent=False)
        self.register_buffer("lead_offset", torch.tensor([[0.0, LEAD_DISTANCE[0], 0.0]]), persistent=False)

    def forward_raw(self, image, speed):
        """Log depth [B,1,H/4,W/4], plan [B,T,3], lead (logit, m, m/s) [B,3]."""
        batch = image.shape[0]
        s2 = self.stem(image)
        s4 = self.block2(self.down2(s2))
        s8 = self.block3(self.down3(s4))
        s16 = self.block4(self.down4(s8))
        up8 = self.up3(upsample(s16)) + s8
        up4 = self.up2(upsample(up8)) + s4
        lo, hi = math.log(DEPTH_RANGE_M[0]), math.log(DEPTH_RANGE_M[1])
        log_depth = torch.sigmoid(self.depth_out(up4)) * (hi - lo) + lo
        flat = self.squeeze(s16).reshape(batch, -1)
        joined = torch.cat([flat, speed * SPEED_SCALE], dim=1)
        hidden = F.relu(self.fc2(F.relu(self.fc1(joined))))
        plan = self.plan_out(hidden).reshape(batch, self.steps, 3) + speed.reshape(batch, 1, 1) * self.plan_basis
        lead = self.lead_out(hidden) * self.lead_scale + self.lead_offset
        return log_depth, plan, lead

    def forward(self, image, speed):
        """The exported outputs: depth m, plan, lead with presence as a probability."""
        log_depth, plan, lead = self.forward_raw(image, speed)
        return log_depth.exp(), plan, torch.cat([torch.sigmoid(lead[:, :1]), lead[:, 1:]], dim=1)


def parameter_counts(model):
    """(burn's count, trainable): burn's `num_params` also counts batch
    norm's running mean and variance, which PyTorch keeps as buffers."""
    trainable = sum(p.numel() for p in model.parameters())
    stats = sum(b.numel() for n, b in model.named_buffers() if n.endswith(("running_mean", "running_var")))
    return trainable + stats, trainable


def upsample(x):
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


def huber(x):
    r = x.abs()
    c = r.clamp(max=1.0)
    return 0.5 * c * c + (r - c)


def losses(raw, t):
    """offboard/src/training/loss.rs: the weighted total (for backward) and its parts."""
    log_depth, plan, lead = raw
    depth = ((log_depth - t["log_depth"]).abs() * t["depth_mask"]).sum() / t["depth_pixels"]
    plan_loss = ((plan - t["plan"]).abs() * t["plan_weight"]).sum() / t["plan_entries"]
    logit, distance, speed = lead[:, 0], lead[:, 1], lead[:, 2]
    bce = F.relu(logit) - logit * t["present"] + torch.log1p(torch.exp(-logit.abs()))
    distance_loss = (huber((distance - t["lead_distance"]) / 10.0) * t["distance_mask"]).sum() / t["distance_count"]
    speed_loss = (huber((speed - t["lead_speed"]) / 2.0) * t["speed_mask"]).sum() / t["speed_count"]
    lead_loss = bce.mean() + distance_loss + speed_loss
    w = LOSS_WEIGHTS
    total = w["depth"] * depth + w["plan"] * plan_loss + w["lead"] * lead_loss
    return total, torch.stack([total, depth, plan_loss, lead_loss])


def synthetic_batch(size, contract, generator):
    """Host tensors of one batch, with the value ranges of training::bench::synthetic_batch."""
    h, w, f = contract["height"], contract["width"], contract["frames"]
    steps = len(contract["plan_times"])
    u = lambda shape, lo, hi: torch.rand(shape, generator=generator) * (hi - lo) + lo
    depth = u((size, 1, h // 4, w // 4), 1.0, 80.0)
    depth[torch.rand(depth.shape, generator=generator) < 0.33] = 0.0
    mask = ((depth > 0) & (depth <= DEPTH_CAP_M)).float()
    present = torch.tensor([1.0 if b % 2 == 0 else 0.0 for b in range(size)])
    plan_weight = torch.tensor([1.0, LOSS_WEIGHTS["plan_lateral"], 0.5]).repeat(size, steps, 1)
    return {
        "image": u((size, 3 * f, h, w), -1.7, 1.7),
        "speed": u((size, 1), 0.0, 25.0),
        "log_depth": depth.clamp(min=1e-3).log(),
        "depth_mask": mask,
        "depth_pixels": max(float(mask.sum()), 1.0),
        "plan": u((size, steps, 3), -2.0, 40.0),
        "plan_weight": plan_weight,
        "plan_entries": max(float(plan_weight.sum()), 1.0),
        "present": present,
        "lead_distance": present * 25.0,
        "distance_mask": present,
        "distance_count": max(float(present.sum()), 1.0),
        "lead_speed": -present,
        "speed_mask": present,
        "speed_count": max(float(present.sum()), 1.0),
    }


def load_contract(path):
    if path is None:
        return dict(DEFAULT_CONTRACT)
    c = json.load(open(path))
    return {
        "width": c["input"]["width"],
        "height": c["input"]["height"],
        "frames": c["input"]["frames"],
        "plan_times": c["plan_times_secs"],
    }


def describe(args):
    contract = load_contract(args.contract)
    model = Model(args.preset, contract).eval()
    image = torch.zeros(2, 3 * contract["frames"], contract["height"], contract["width"])
    speed = torch.tensor([[4.0], [0.0]])
    with torch.no_grad():
        depth, plan, lead = model(image, speed)
    print(json.dumps({
        "preset": args.preset,
        "parameters": parameter_counts(model)[0],
        "trainable": parameter_counts(model)[1],
        "outputs": {"depth": list(depth.shape), "plan": list(plan.shape), "lead": list(lead.shape)},
        "constant_velocity_x_at_last_step": float(plan[0, -1, 0]),
        "torch": torch.__version__,
    }))


def train(args):
    contract = load_contract(args.contract)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: torch sees no CUDA device (torch.cuda.is_available() is False)")
    torch.manual_seed(0)
    for size in [int(s) for s in args.batch_sizes.split(",")]:
        model = Model(args.preset, contract).to(device).train()
        optim = torch.optim.AdamW(model.parameters(), lr=TRAIN["learning_rate"], weight_decay=TRAIN["weight_decay"])
        host = synthetic_batch(size, contract, torch.Generator().manual_seed(0))
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        steps_ms = []
        for step in range(args.warmup + args.steps):
            if step == args.warmup:
                timed = time.perf_counter()
            started = time.perf_counter()
            t = {k: v.to(device) if torch.is_tensor(v) else v for k, v in host.items()}
            total, parts = losses(model.forward_raw(t["image"], t["speed"]), t)
            read = parts.tolist()  # the parts read back each step, as nines does
            if not math.isfinite(read[0]):
                sys.exit(f"the loss is not finite at step {step}: {read}")
            optim.zero_grad(set_to_none=True)
            total.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), TRAIN["grad_clip"])
            optim.step()
            if step >= args.warmup:
                steps_ms.append((time.perf_counter() - started) * 1e3)
        secs = max(time.perf_counter() - timed, 1e-9)
        steps_ms.sort()
        row = {
            "framework": f"PyTorch {torch.__version__.split('+')[0]}",
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)",
            "preset": args.preset,
            "batch_size": size,
            "steps": args.steps,
            "warmup": args.warmup,
            "parameters": parameter_counts(model)[0],
            "images_per_sec": size * args.steps / secs,
            "step_ms_median": steps_ms[len(steps_ms) // 2],
        }
        if device.type == "cuda":
            row["peak_memory_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
        print(json.dumps(row), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("describe", help="parameter count and output shapes, as JSON")
    t = sub.add_parser("train", help="time training steps on synthetic batches")
    for p in (d, t):
        p.add_argument("--preset", choices=sorted(PRESETS), default="default")
        p.add_argument("--contract", help="contract JSON written by nines [default: nines' default contract]")
    t.add_argument("--batch-sizes", default="32,128")
    t.add_argument("--warmup", type=int, default=5)
    t.add_argument("--steps", type=int, default=20)
    t.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    describe(args) if args.command == "describe" else train(args)


if __name__ == "__main__":
    main()
