"""The ``fastconv`` command: ``info``, ``bench``, ``train``, ``evaluate`` and ``export``."""

import argparse
import json
import math
import os
import pathlib
import shlex
import shutil
import subprocess
import sys
import tempfile

# build_model and MODELS live in models (the benchmark needs them without the command line);
# re-exported here for callers of fastconv.cli.build_model
from .models import MODELS, build_model

DATASETS = {"fashion-mnist": "FashionMNIST", "mnist": "MNIST", "cifar10": "CIFAR10"}
# (channels, side) of each dataset's square images: the models are built for them.
IMAGE_SHAPES = {"fashion-mnist": (1, 28), "mnist": (1, 28), "cifar10": (3, 32)}
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad")
# The default recipe per model: optimizer, learning rate, epochs; the learning rate follows a
# cosine from that value towards 0 over the run. Measured (seed 0, 2 threads): fashion_cnn
# 91.56% on Fashion-MNIST after 5 epochs (91.48% with seed 1), lenet5 99.19% on MNIST after 10.
RECIPES = {"fashion_cnn": ("adam", 2e-3, 5), "lenet5": ("sgd", 0.05, 10),
           "resnet18": ("sgd", 0.05, 10), "inception_net": ("adam", 2e-3, 10),
           "mlp": ("sgd", 0.05, 10)}


def _print_info():
    from . import info

    d = info()
    width = max(len(k) for k in d)
    for key, value in d.items():
        if value is None or value == "":
            value = "-"
        elif isinstance(value, bool):
            value = "yes" if value else "no"
        elif isinstance(value, list):
            value = " ".join(map(str, value))
        print(f"{key:<{width}}  {value}")


def _optimizer(name, params, lr):
    from . import optim

    if name == "sgd":
        return optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    if name == "adam":
        return optim.Adam(params, lr=lr)
    if name == "adamw":
        return optim.AdamW(params, lr=lr)
    if name == "rmsprop":
        return optim.RMSprop(params, lr=lr)
    return optim.Adagrad(params, lr=lr)


def _fail(command, message):
    """End `fastconv command` on a problem of the user's files: one line on stderr, status 2."""
    print(f"fastconv {command}: {message}", file=sys.stderr)
    raise SystemExit(2)


def _dataset(name, root, train, check_integrity, command):
    """The dataset, normalised; missing, damaged or unpublished files end the command with
    advice in terms of its options (the errors' own advice names Python arguments)."""
    from . import data

    cls = DATASETS[name]
    try:
        return getattr(data, cls)(root, train=train, normalize=True,
                                  check_integrity=check_integrity)
    except data.IntegrityError as err:
        _fail(command, f"{err.problem}; --no-integrity-check reads it anyway")
    except data.DatasetNotFoundError as err:
        _fail(command, f"{err.problem}. Pass --data the folder holding the files or set "
                       f"FASTCONV_DATA; in Python, fastconv.data.{cls}(folder, download=True) "
                       "fetches them")
    except (OSError, ValueError) as err:  # unreadable, truncated or corrupt files, named
        _fail(command, str(err))


def _model(name, dataset):
    channels, side = IMAGE_SHAPES[dataset]
    return build_model(name, in_channels=channels, input_size=side)


def _report(scores, classes):
    print(f"test accuracy {scores['accuracy']:.4f}  macro precision {scores['precision']:.4f}  "
          f"recall {scores['recall']:.4f}  F1 {scores['f1']:.4f}")
    per = scores["per_class"]
    for i, name in enumerate(classes):
        print(f"  {name:<12} precision {per['precision'][i]:.3f}  recall {per['recall'][i]:.3f}  "
              f"f1 {per['f1'][i]:.3f}  support {per['support'][i]}")


def _write_json(path, obj):
    from ._atomic import atomic_write

    text = json.dumps(obj, indent=2)  # serialised first: a bad value leaves no file behind
    with atomic_write(path, "w", encoding="utf-8") as f:
        f.write(text)


# Where the common MPI launchers say how many ranks the job has (MPICH/Hydra, Intel MPI and
# Slurm's PMI; Open MPI; MVAPICH).
_LAUNCHER_SIZE = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")


def _launched_size():
    """The number of ranks of the MPI job this process was started in (1 when not launched)."""
    for var in _LAUNCHER_SIZE:
        value = os.environ.get(var, "")
        if value.isdigit():
            return int(value)
    return 1


def _launch(argv, nproc):
    """`fastconv train ... --nproc N`: the same command on N ranks under this environment's
    mpiexec (the mpich wheel's, beside this Python, first), each with cores / N threads unless
    OMP_NUM_THREADS or --threads says otherwise."""
    here = os.path.dirname(sys.executable)
    mpiexec = shutil.which("mpiexec", path=here + os.pathsep + os.environ.get("PATH", ""))
    if mpiexec is None:
        raise SystemExit("fastconv train: --nproc needs an MPI launcher (mpiexec); "
                         "pip install \"fastconv[mpi]\" installs MPICH's")
    env = dict(os.environ)
    if "OMP_NUM_THREADS" not in env:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        env["OMP_NUM_THREADS"] = str(max(1, (cores or 1) // nproc))
    cmd = [mpiexec, "-n", str(nproc), sys.executable, "-m", "mpi4py", "-m", "fastconv", *argv]
    from .distributed._group import DONE_FILE_ENV

    with tempfile.TemporaryDirectory() as tmp:
        done = os.path.join(tmp, "finished")
        env[DONE_FILE_ENV] = done
        code = subprocess.run(cmd, env=env).returncode
        if code == 0 and not os.path.exists(done):
            print("fastconv train: a rank left without finishing and mpiexec stopped the "
                  "others; the run did not complete", file=sys.stderr)
            return 1
    return code


def _train(args):
    import numpy as np

    from . import data, manual_seed, nn, optim, save, set_num_threads, train, viz

    if args.threads:
        set_num_threads(args.threads)
    distributed = _launched_size() > 1
    rank = 0
    if distributed:
        from . import distributed as dist

        dist.init_process_group("nccl" if args.device == "cuda" else "mpi")
        rank = dist.get_rank()
    main = rank == 0
    say = print if main else (lambda *a, **k: None)
    # The same seed everywhere makes the same initial model; dropout and augmentation then draw
    # from a stream of their own on each rank.
    manual_seed(args.seed)
    opt_name, lr, epochs = RECIPES[args.model]
    opt_name = args.optimizer or opt_name
    lr = args.lr if args.lr is not None else lr
    epochs = args.epochs if args.epochs is not None else epochs
    train_set = _dataset(args.dataset, args.data, True, not args.no_integrity_check, "train")
    if args.limit:
        train_set.images, train_set.labels = train_set.images[:args.limit], train_set.labels[:args.limit]
    test_set = _dataset(args.dataset, args.data, False, not args.no_integrity_check, "train")
    transform = None
    if args.augment and args.dataset == "cifar10":
        transform = data.Compose([data.RandomCrop(32, padding=4), data.RandomHorizontalFlip()])
    elif args.augment:
        # Digits must not be mirrored; clothes may.
        flips = [data.RandomHorizontalFlip()] if args.dataset == "fashion-mnist" else []
        transform = data.Compose(flips + [data.RandomShift(2)])
    if distributed:
        shard = dist.DistributedSampler(len(train_set), shuffle=True, seed=args.seed)
        loader = data.DataLoader(train_set.images, train_set.labels, args.batch_size,
                                 seed=[args.seed, rank], transform=transform, sampler=shard)
        test_loader = data.DataLoader(test_set.images, test_set.labels, 500,
                                      sampler=dist.DistributedSampler(len(test_set), shuffle=False))
    else:
        loader = data.DataLoader(train_set.images, train_set.labels, args.batch_size,
                                 shuffle=True, seed=args.seed, transform=transform)
        test_loader = data.DataLoader(test_set.images, test_set.labels, 500)
    model = _model(args.model, args.dataset)
    if distributed:
        manual_seed([args.seed, rank])
    loss_fn = nn.CrossEntropyLoss()
    opt = _optimizer(opt_name, model.parameters(), lr)
    sched = optim.lr_scheduler.LambdaLR(opt, lambda e: 0.5 * (1 + math.cos(math.pi * e / epochs)))
    say(f"training {args.model} on {args.dataset} ({len(train_set)} images) for {epochs} "
        f"epochs: {opt_name} lr {lr}, batch {args.batch_size}"
        + (f" per rank on {dist.get_world_size()} ranks" if distributed else "")
        + f", seed {args.seed}" + (", augmented" if args.augment else ""))
    history = train.fit(model, loss_fn, opt, loader, epochs, val_loader=test_loader,
                        scheduler=sched, device=args.device, progress=main,
                        distributed=distributed)
    for r in history:
        say(f"epoch {r['epoch']}: train loss {r['train_loss']:.4f} acc {r['train_acc']:.4f}  "
            f"test loss {r['val_loss']:.4f} acc {r['val_acc']:.4f}  {r['time']:.1f} s "
            f"({r['images_per_s']:.0f} images/s)")
    # num_classes: a test set missing the last classes still gets a row for each of them
    scores = train.evaluate(model, test_loader, loss_fn, num_classes=len(test_set.classes))
    if distributed:
        dist.destroy_process_group()
    if not main:
        return 0  # every rank holds the same model: rank 0 reports and writes the files
    _report(scores, test_set.classes)
    model.to("cpu")  # the pictures and the saved file are made from NumPy arrays
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # Each file is replaced atomically: an interrupted run leaves the previous one whole.
    save(model.state_dict(), out / "model.npz")
    _write_json(out / "run.json", {"model": args.model, "dataset": args.dataset})
    _write_json(out / "history.json", {
        "history": history, "test": {k: v for k, v in scores.items()
                                     if k not in ("per_class", "confusion_matrix")},
        "confusion_matrix": np.asarray(scores["confusion_matrix"]).tolist()})
    pictures = [out / "history.png", out / "confusion.png", out / "filters.png",
                out / "feature_maps.png"]
    try:
        viz.plot_history(history, pictures[0], f"{args.model} on {args.dataset}",
                         val_label="test")
        viz.plot_confusion_matrix(scores["confusion_matrix"], pictures[1], test_set.classes)
        first_conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
        if first_conv is not None:
            viz.plot_filters(first_conv.weight, pictures[2])
            viz.plot_feature_maps(model, first_conv, test_set.images[0], pictures[3])
        written = [str(p) for p in pictures if p.exists()]
    except ImportError as err:
        written = [f"(no pictures: {err})"]
    print(f"wrote {out / 'model.npz'}, {out / 'history.json'}, " + ", ".join(written))
    return 0


def _saved_model(args, command, default_dataset=None):
    """(model with the file's weights, its name, its dataset) for --model-file, the model and
    dataset from the options, else from run.json beside the file (else default_dataset)."""
    from . import load

    model_file = pathlib.Path(args.model_file)
    if not model_file.is_file():
        raise SystemExit(f"fastconv {command}: no such model file: {model_file}")
    run = model_file.parent / "run.json"
    saved = json.loads(run.read_text()) if run.exists() else {}
    model_name = args.model or saved.get("model")
    dataset = args.dataset or saved.get("dataset") or default_dataset
    if not model_name or not dataset:
        raise SystemExit(f"fastconv {command}: pass --model and --dataset (no run.json beside "
                         f"{model_file})")
    model = _model(model_name, dataset)
    try:
        model.load_state_dict(load(model_file))
    except (KeyError, ValueError, TypeError) as err:  # a file of another model or dataset
        raise SystemExit(f"fastconv {command}: {model_file} does not hold {model_name}'s weights "
                         f"for {dataset}: {err}") from None
    return model, model_name, dataset


def _evaluate(args):
    from . import data, nn, train

    model, model_name, dataset = _saved_model(args, "evaluate")
    model.to(args.device)
    test_set = _dataset(dataset, args.data, False, not args.no_integrity_check, "evaluate")
    scores = train.evaluate(model, data.DataLoader(test_set.images, test_set.labels, 500),
                            nn.CrossEntropyLoss(), num_classes=len(test_set.classes))
    print(f"{model_name} from {args.model_file} on the {dataset} test set ({len(test_set)} "
          f"images): loss {scores['loss']:.4f}")
    _report(scores, test_set.classes)
    return 0


def _export(args):
    import numpy as np

    from . import onnx

    model, model_name, dataset = _saved_model(args, "export", "fashion-mnist")
    channels, side = IMAGE_SHAPES[dataset]
    example = np.zeros((1, channels, side, side), np.float32)
    try:
        onnx.export(model, example, args.out, opset_version=args.opset)
    except (ValueError, TypeError, ImportError) as err:  # an opset it cannot write, no onnx
        raise SystemExit(f"fastconv export: {err}") from None
    print(f"wrote {args.out}: {model_name} for {channels}x{side}x{side} {dataset} images, "
          f"batch dimension symbolic")
    return 0


def main(argv=None):
    try:
        return _main(argv)
    except BrokenPipeError:
        # The reader went away (`fastconv evaluate ... | head`): no traceback, and none at exit
        # either, when Python flushes stdout into the closed pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _main(argv):
    from . import bench

    parser = argparse.ArgumentParser(prog="fastconv", description="fastconv command line")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="print version, BLAS, threads, OpenMP, SIMD and CUDA facts")
    bench.add_arguments(sub.add_parser(
        "bench", help="validate, then time fastconv against NumPy, PyTorch and the machine's "
                      "ceilings"))
    tr = sub.add_parser("train", help="train a model on Fashion-MNIST, MNIST or CIFAR-10")
    tr.add_argument("dataset", choices=sorted(DATASETS))
    tr.add_argument("--model", choices=MODELS, default="fashion_cnn")
    tr.add_argument("--epochs", type=int)
    tr.add_argument("--optimizer", choices=OPTIMIZERS)
    tr.add_argument("--lr", type=float)
    tr.add_argument("--batch-size", type=int, default=64)
    tr.add_argument("--augment", action="store_true",
                    help="random flips (Fashion-MNIST) and 2-pixel shifts; on CIFAR-10, "
                         "random 32x32 crops of the image zero-padded by 4, and flips")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--limit", type=int, help="train on the first LIMIT images only (quick runs)")
    tr.add_argument("--threads", type=int, help="CPU threads (per rank with --nproc)")
    tr.add_argument("--nproc", type=int, default=1,
                    help="train data-parallel on NPROC processes of this machine through its "
                         "mpiexec (needs fastconv[mpi]); --batch-size is then per rank. Under "
                         "mpiexec or srun, leave it out: the ranks find each other")
    tr.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                    help="cuda: train on the GPU (CuPy arrays; needs a CUDA build and CuPy)")
    tr.add_argument("--data", help="folder with the dataset files (default: $FASTCONV_DATA or "
                                   "the user cache)")
    tr.add_argument("--no-integrity-check", action="store_true",
                    help="read dataset files whose md5 (or CIFAR-10 record count) is not the "
                         "published one")
    tr.add_argument("--out", default="runs/latest", help="where to write the model, history, PNGs")
    ev = sub.add_parser("evaluate", help="score a saved model on its test set")
    ev.add_argument("--model-file", required=True)
    ev.add_argument("--model", choices=MODELS)
    ev.add_argument("--dataset", choices=sorted(DATASETS))
    ev.add_argument("--data")
    ev.add_argument("--no-integrity-check", action="store_true", help="as for train")
    ev.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ex = sub.add_parser("export", help="write a saved model as ONNX (needs fastconv[onnx])")
    ex.add_argument("--model-file", required=True)
    ex.add_argument("--model", choices=MODELS, help="default: from run.json beside the file")
    ex.add_argument("--dataset", choices=sorted(DATASETS),
                    help="the input's shape (default: from run.json, else fashion-mnist)")
    ex.add_argument("--out", required=True, help="the .onnx file to write")
    ex.add_argument("--opset", type=int, help="ai.onnx opset (default 17)")
    args = parser.parse_args(argv)
    if args.command == "info":
        _print_info()
        return 0
    if args.command == "bench":
        argv = sys.argv[1:] if argv is None else argv
        return bench.run_cli(args, "fastconv " + shlex.join(argv))
    if args.command == "train":
        if args.nproc < 1:
            parser.error(f"--nproc must be at least 1, got {args.nproc}")
        if args.nproc > 1 and _launched_size() == 1:
            return _launch(sys.argv[1:] if argv is None else list(argv), args.nproc)
        return _train(args)
    if args.command == "export":
        return _export(args)
    return _evaluate(args)


if __name__ == "__main__":
    sys.exit(main())
