"""`dgpt`: the one command line for oracle operators, aggregator operators and developers.

The core's own commands live here; `dgpt oracle ...`, `dgpt aggregator ...` and `dgpt validator ...`
are the roles' (`oracle.cli`, `aggregator.cli`, `validator.cli`), `dgpt demo` the harness's."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dgpt import __version__
from dgpt.context import account, add_alias, address_arg, add_common, add_key, chain_of, protocol_of, settings, store_of
from dgpt.errors import DGPTError


def cmd_localnet(args: argparse.Namespace) -> int:
    import contextlib
    import signal

    from harness.localnet import anvil, ipfs_daemon, port_is_free

    for flag, port in (("--chain-port", args.chain_port), ("--ipfs-port", args.ipfs_port)):
        if not port_is_free(port):
            raise DGPTError(f"{flag} {port}: something already listens on 127.0.0.1:{port} (pick another port, or stop it)")
    home = Path(settings(args).home) / "localnet"
    home.mkdir(parents=True, exist_ok=True)
    # SIGTERM stops the services as Ctrl-C does: the context managers stop them by PID and Anvil saves its state.
    def interrupt(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    with contextlib.ExitStack() as services:
        try:
            rpc = services.enter_context(anvil(port=args.chain_port, state=home / "anvil-state.json"))
            api = services.enter_context(ipfs_daemon(home / "ipfs", api_port=args.ipfs_port))
            if args.json:
                print(json.dumps({"rpc_url": rpc, "ipfs_api": api, "home": str(home)}), flush=True)
            else:
                print(f"chain  {rpc}   Anvil, chain id 31337, 10 funded dev accounts (--dev --dev-key N); state in {home}/anvil-state.json\n"
                      f"ipfs   {api}   js-ipfs, offline, serving the Kubo RPC API; repository {home}/ipfs\n"
                      f"use them with --rpc-url {rpc} --ipfs-api {api} (or rpc_url/ipfs_api in dgpt.toml); Ctrl-C stops both",
                      flush=True)
            signal.pause()
        except KeyboardInterrupt:
            pass
    if not args.json:
        print("stopped")
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    from dashboard.app import serve

    cfg = settings(args)
    server = serve(protocol_of(cfg), store_of(cfg), args.host, args.port)
    print(f"round explorer on http://{args.host}:{server.server_port}/ (read-only; Ctrl-C stops it)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from harness.demo import DemoPlan, run_demo
    from harness.demo_processes import run_demo_processes

    log = (lambda *a, **k: print(*a, file=sys.stderr, flush=True, **k)) if args.json else (lambda *a: print(*a, flush=True))
    rounds = {k: v for k, v in (("pretrain_rounds", args.pretrain_rounds), ("finetune_rounds", args.finetune_rounds)) if v is not None}
    plan = DemoPlan(oracles=args.oracles, **rounds,
                    examples_per_oracle=args.examples_per_oracle, test_examples=args.test_examples,
                    **({"delta_encoding": args.encoding} if args.encoding else {}))
    plan.tasks()  # a bad --encoding fails here, before anything is deployed
    cfg = settings(args)
    if cfg.rpc_url:
        if args.dashboard is not None:
            raise DGPTError("--dashboard serves the embedded demo; against --rpc-url run `dgpt dashboard` beside it")
        # The roles run as separate OS processes that talk only through the chain and the store.
        result = run_demo_processes(cfg, plan, log=log)
    else:
        def linger(server):  # the page stays up until Ctrl-C
            log(f"the rounds are done; the round explorer stays on http://127.0.0.1:{server.server_port}/ until Ctrl-C")
            try:
                server.serve_forever()
            except KeyboardInterrupt:
                pass

        result = run_demo(cfg, plan, log=log, dashboard_port=args.dashboard, after=linger)
    if args.json:
        print(json.dumps(result.to_json()))
    return 0


def cmd_cid(args: argparse.Namespace) -> int:
    from dgpt.store.unixfs import file_cid

    try:
        with open(args.file, "rb") as f:
            cid = file_cid(f, args.cid_version)
    except OSError as exc:
        raise DGPTError(f"cannot read {args.file}: {exc.strerror}") from None
    print(cid.encode())
    return 0


def cmd_put(args: argparse.Namespace) -> int:
    from dgpt.progress import byte_bar, on_terminal

    cfg = settings(args)
    store = store_of(cfg)
    try:
        with byte_bar(f"adding {Path(args.file).name}", Path(args.file).stat().st_size, on_terminal()) as update:
            cid = store.put_file(args.file, progress=update)
    except FileNotFoundError:
        raise DGPTError(f"cannot read {args.file}: no such file") from None
    if args.pin:
        store.pin(cid)
    print(cid)
    return 0


def cmd_get(args: argparse.Namespace) -> int:
    from dgpt.store.base import parse

    parse(args.cid)  # a malformed CID is an error before any connection is made
    cfg = settings(args)
    store = store_of(cfg)
    if args.out:
        from dgpt.progress import byte_bar, on_terminal

        with byte_bar(f"fetching {args.cid[:16]}...", None, on_terminal()) as update:
            store.get_file(args.cid, args.out, max_bytes=args.max_bytes, progress=update)  # verified, written atomically
        print(args.out)
    else:
        for chunk in store.get(args.cid, max_bytes=args.max_bytes):
            sys.stdout.buffer.write(chunk)
    return 0


def cmd_dataset_commitment(args: argparse.Namespace) -> int:
    from dgpt.data import load_examples
    from dgpt.dataset import manifest, merkle_root
    from dgpt.store import open_store

    labels = tuple(args.labels.split(",")) if args.labels else None
    examples = load_examples(args.file, labels)
    cfg = settings(args)
    cid = open_store(cfg.ipfs_api, cfg.store_dir).put_bytes(manifest(examples, labels or ()))
    out = {"manifest_cid": cid, "merkle_root": "0x" + merkle_root(examples).hex(), "num_examples": len(examples)}
    print(json.dumps(out) if args.json else "\n".join(f"{k}: {v}" for k, v in out.items()))
    return 0


def cmd_dataset_rotten_tomatoes(args: argparse.Namespace) -> int:
    from dgpt.data import rt_splits, write_jsonl

    if args.shards < 1:
        raise DGPTError(f"--shards {args.shards}: need at least one")
    splits = rt_splits(args.shards, args.per_shard, args.validation, args.test)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    files = {f"shard-{i}.jsonl": shard for i, shard in enumerate(splits.shards)}
    files.update({"validation.jsonl": splits.validation, "test.jsonl": splits.test})
    for name, examples in files.items():
        write_jsonl(out / name, examples)
        print(f"{out / name}: {len(examples)} snippets")
    return 0


def cmd_model_init(args: argparse.Namespace) -> int:
    from dgpt.model import import_pretrained, save_model, tiny_gpt2

    if args.gguf:
        bundle = import_pretrained(Path(args.gguf).parent, Path(args.gguf).name)
    elif args.hf_dir:
        bundle = import_pretrained(args.hf_dir)
    else:
        bundle = tiny_gpt2(seed=args.seed)
    save_model(args.out, bundle)
    print(args.out)
    return 0


def cmd_model_apply(args: argparse.Namespace) -> int:
    from dgpt.delta import apply_to_model

    apply_to_model(args.model, args.delta, args.out)
    print(args.out)
    return 0


def cmd_model_export(args: argparse.Namespace) -> int:
    from dgpt.model import export_hf, load_model

    path = Path(args.model)
    if not path.exists():  # a CID (or `latest`): fetched from the store and checked against it
        cfg = settings(args)
        cid = args.model
        if cid == "latest":
            cid = protocol_of(cfg).latest_model()
            if not cid:
                raise DGPTError("--model latest: no round is final yet, so the network has no model of its own")
        from dgpt.progress import byte_bar, on_terminal

        with byte_bar(f"fetching {cid[:16]}...", None, on_terminal()) as update:
            path = store_of(cfg).cached(cid, Path(cfg.home) / "cache", progress=update)
    arch = export_hf(load_model(path), args.out)
    print(f"{args.out}: {arch} (load with transformers' from_pretrained)")
    return 0


def cmd_worker_train(args: argparse.Namespace) -> int:
    from dgpt.train import main as train_main

    return train_main([args.model, args.task, args.data, args.out] + (["--device", args.device] if args.device else []) + (["--compile"] if args.compile else []))


def cmd_worker_eval(args: argparse.Namespace) -> int:
    from dgpt.data import load_examples
    from dgpt.model import load_model
    from dgpt.task import TaskSpec
    from dgpt.train import evaluate

    try:
        task = TaskSpec.from_bytes(Path(args.task).read_bytes())
    except OSError as exc:
        raise DGPTError(f"cannot read {args.task}: {exc.strerror}") from None
    bundle = load_model(args.model)
    examples = load_examples(args.data, bundle.labels or None)
    result = evaluate(bundle, examples, task, args.device or ("cuda" if __import__("torch").cuda.is_available() else "cpu"))
    print(json.dumps(result) if args.json else "  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in result.items()))
    return 0


def cmd_deploy(args: argparse.Namespace) -> int:
    from dgpt.chain.protocol import ProtocolParams, deploy
    from dgpt.units import parse_tokens

    min_stake = parse_tokens(args.min_stake, "--min-stake")
    cfg = settings(args)
    admin = account(args)
    default = ProtocolParams()
    # The penalties must not exceed the minimum stake: scale them down with a small one.
    penalties = {k: min(getattr(default, k), min_stake) for k in ("non_reveal_penalty", "malformed_penalty", "non_finite_penalty", "norm_penalty")}
    seats = max(args.validator_seats, len(args.validator or ()))
    quorum = seats // 2 + 1 if args.validator_quorum is None else args.validator_quorum
    if quorum and not seats // 2 < quorum <= seats:
        raise DGPTError(f"--validator-quorum {quorum} must be 0 or a majority of the {seats} seats ({seats // 2 + 1}..{seats})")
    if args.unbonding_period < 1:
        raise DGPTError(f"--unbonding-period {args.unbonding_period}: must be at least 1 second")
    # The report's slashes must land while the stake is still there: the slash window (a day by
    # default) never outlasts the unbonding period.
    slash_window = min(default.slash_window, args.unbonding_period)
    params = ProtocolParams(min_stake=min_stake, unbonding_period=args.unbonding_period, challenge_window=args.challenge_window,
                            slash_window=slash_window, validator_seats=seats, validator_quorum=quorum, **penalties)
    protocol = deploy(chain_of(cfg), admin, args.aggregator or admin.address, params, tuple(args.validator or ()))
    cfg.deployment_file.parent.mkdir(parents=True, exist_ok=True)
    cfg.deployment_file.write_text(json.dumps(protocol.deployment.to_json()))
    print(json.dumps(protocol.deployment.to_json()) if args.json else f"deployed: token {protocol.deployment.token}, protocol {protocol.deployment.protocol} -> {cfg.deployment_file}")
    return 0


def cmd_transfer(args: argparse.Namespace) -> int:
    from dgpt.units import format_tokens, parse_tokens

    amount = parse_tokens(args.amount, "amount")
    to = address_arg(args.to, "recipient")
    cfg = settings(args)
    sender = account(args)  # key problems first: they need no network
    protocol_of(cfg).transfer(sender, to, amount)
    print(f"sent {format_tokens(amount)} DGPT to {to}")
    return 0


def cmd_fund(args: argparse.Namespace) -> int:
    from dgpt.units import parse_tokens

    wei = parse_tokens(args.amount, "amount")  # ETH has 18 decimals, as DGPT
    to = address_arg(args.to, "address")
    sender = account(args)
    chain = chain_of(settings(args))
    chain.send_eth(sender, to, wei)
    print(f"sent {args.amount} ETH to {to}; it now has {chain.eth_balance(to) / 10**18:g} ETH for gas")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from dgpt.status import status

    cfg = settings(args)
    print(status(protocol_of(cfg), store_of(cfg), as_json=args.json))
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from dgpt.audit import audit_round, plain

    cfg = settings(args)
    result = audit_round(protocol_of(cfg), store_of(cfg), args.round)
    if args.json:
        print(json.dumps(result.to_json(), default=str))
        return 0 if result.ok else 3
    print(f"round {result.round_id}: {'OK' if result.ok else 'MISMATCH'}: published model {result.published_model_cid}, "
          f"recomputed {result.recomputed_model_cid}")
    for p in result.problems:
        print(f"  - {p}")
    if result.differences:
        rows = [("what", "published", "recomputed")] + [(w, str(plain(a)), str(plain(b))) for w, a, b in result.differences]
        width = [min(60, max(len(r[k]) for r in rows)) for k in range(3)]
        for r in rows:
            print("  " + "  ".join(c[:60].ljust(width[k]) for k, c in enumerate(r)))
    return 0 if result.ok else 3


def cmd_challenge(args: argparse.Namespace) -> int:
    from dgpt.disputes import evidence_for, send_challenge

    cfg = settings(args)
    me = account(args)
    protocol = protocol_of(cfg)
    evidence, why = evidence_for(protocol, store_of(cfg), args.round)
    if evidence is None:
        print(f"round {args.round}: no challenge: {why}")
        return 0
    if args.dry_run:
        print(f"round {args.round}: provable: {evidence}")
        return 0
    send_challenge(protocol, me, args.round, evidence)
    print(f"round {args.round}: challenged: {evidence}; the proposal is void and the challenger's share of the bond paid")
    return 0


def cmd_bond(args: argparse.Namespace) -> int:
    from dgpt.units import format_tokens, parse_tokens

    amount = parse_tokens(args.amount, "amount")
    cfg = settings(args)
    me = account(args)
    protocol = protocol_of(cfg)
    (protocol.deposit_bond if args.action == "deposit" else protocol.withdraw_bond)(me, amount)
    held, locked = protocol.bond(me.address)
    print(f"bond of {me.address}: {format_tokens(held)} DGPT, {format_tokens(locked)} locked")
    return 0


def cmd_keys_new(args: argparse.Namespace) -> int:
    from dgpt.keys import new_keystore, read_password

    print(new_keystore(args.out, read_password(args.password_file, confirm=True)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dgpt", description="Decentralized fine-tuning of GPT models, coordinated on-chain.")
    parser.add_argument("--version", action="version", version=f"dgpt {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # Connection settings every command shares; they override $DGPT_* and the config file.
    common = argparse.ArgumentParser(add_help=False)
    add_common(common)
    keyed = argparse.ArgumentParser(add_help=False)
    add_key(keyed)

    localnet = sub.add_parser("localnet", parents=[common], help="start a local chain (Anvil) and IPFS daemon (js-ipfs) for development, until Ctrl-C")
    localnet.add_argument("--chain-port", type=int, default=8545, help="Anvil's JSON-RPC port (default 8545)")
    localnet.add_argument("--ipfs-port", type=int, default=5001, help="the IPFS RPC API's port (default 5001, as Kubo's)")
    localnet.add_argument("--json", action="store_true", help="print the two URLs as one JSON line once both answer")
    localnet.set_defaults(func=cmd_localnet)

    dash = sub.add_parser("dashboard", parents=[common], help="serve the round explorer: a read-only web page over the chain and the store")
    dash.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    dash.add_argument("--port", type=int, default=8050, help="port (default 8050; 0: any free port)")
    dash.set_defaults(func=cmd_dashboard)

    demo = sub.add_parser("demo", parents=[common], help="deploy the protocol and run a training round on embedded defaults")
    demo.add_argument("--oracles", type=int, default=4, help="number of oracles (default 4)")
    demo.add_argument("--pretrain-rounds", type=int, help="L1 pre-training rounds (default: the demo plan's, 2)")
    demo.add_argument("--finetune-rounds", type=int, help="L3 fine-tuning rounds (default: the demo plan's, 3)")
    demo.add_argument("--examples-per-oracle", type=int, help="cap each oracle's shard (default: all of it)")
    demo.add_argument("--test-examples", type=int, default=1000, help="held-out test snippets to report on (default 1000)")
    demo.add_argument("--encoding", help="how the oracles pack their deltas: fp32, bf16, int8, int4 or topk "
                                         "(default: the project's, dgpt.encoding.DEFAULT_ENCODING)")
    demo.add_argument("--dashboard", type=int, nargs="?", const=8050, metavar="PORT",
                      help="serve the round explorer while the demo runs, and after it until Ctrl-C (default port 8050)")
    demo.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    demo.set_defaults(func=cmd_demo)

    cid = sub.add_parser(
        "cid",
        help="print the CID `ipfs add --only-hash` gives FILE (streams it: flat memory)",
        description="Print the CID that `ipfs add --only-hash -Q --cid-version 1 --raw-leaves FILE` (default) "
        "or `ipfs add --only-hash -Q FILE` (--cid-version 0) prints, and nothing else.",
    )
    cid.add_argument("file", metavar="FILE")
    cid.add_argument("--cid-version", type=int, choices=(0, 1), default=1, help="0 or 1 (default 1, raw leaves)")
    cid.set_defaults(func=cmd_cid)

    put = sub.add_parser("put", parents=[common], help="add FILE to the store (embedded, or the daemon of --ipfs-api); prints its CID")
    put.add_argument("file", metavar="FILE")
    put.add_argument("--pin", action="store_true", help="pin it (a daemon keeps it through garbage collection)")
    put.set_defaults(func=cmd_put)

    get = sub.add_parser("get", parents=[common], help="fetch content by CID from the store, checked against the CID")
    get.add_argument("cid", metavar="CID")
    get.add_argument("-o", "--out", help="write to this file (default: stdout)")
    get.add_argument("--max-bytes", type=int, help="refuse content larger than this")
    get.set_defaults(func=cmd_get)

    dep = sub.add_parser("deploy", parents=[common, keyed], help="deploy the token and the protocol; write the deployment file")
    dep.add_argument("--aggregator", help="address given AGGREGATOR_ROLE (default: the deployer)")
    dep.add_argument("--min-stake", default="100", help="minimum stake in DGPT (default 100)")
    dep.add_argument("--unbonding-period", type=int, default=7 * 24 * 3600, help="seconds (default one week)")
    dep.add_argument("--challenge-window", type=int, default=24 * 3600, help="seconds after a publish for proofs and attestations (default one day)")
    dep.add_argument("--validator-seats", type=int, default=3, help="n: most validators seated at once (default 3)")
    dep.add_argument("--validator-quorum", type=int, help="m: agreeing attestations a round needs to be final (default a majority of the seats; 0: none)")
    dep.add_argument("--validator", action="append", metavar="ADDRESS", help="seat this validator at deployment (repeatable)")
    dep.add_argument("--json", action="store_true")
    dep.set_defaults(func=cmd_deploy)

    tr = sub.add_parser("transfer", parents=[common, keyed], help="send DGPT, e.g. from the admin's genesis supply to a new oracle")
    tr.add_argument("to")
    tr.add_argument("amount", help="in DGPT (decimal, up to 18 decimals)")
    tr.set_defaults(func=cmd_transfer)
    # Nobody mints after deployment any more: the old `mint` sends from the genesis supply.
    add_alias(sub, "mint", tr, "dgpt transfer")

    fund = sub.add_parser("fund", parents=[common, keyed], help="send ETH for gas to ADDRESS (e.g. a new key, from a dev account on a local chain)")
    fund.add_argument("to", metavar="ADDRESS")
    fund.add_argument("amount", metavar="ETH", help="in ETH (decimal, up to 18 decimals)")
    fund.set_defaults(func=cmd_fund)

    st = sub.add_parser("status", parents=[common], help="rounds, oracles, stakes, submissions and rewards, as a table")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=cmd_status)

    audit = sub.add_parser("audit", parents=[common], help="recompute a published round from its report and the chain")
    audit.add_argument("round", type=int)
    audit.add_argument("--json", action="store_true")
    audit.set_defaults(func=cmd_audit)

    ch = sub.add_parser("challenge", parents=[common, keyed], help="void a round's proposal with a fault the contract checks by itself")
    ch.add_argument("round", type=int)
    ch.add_argument("--dry-run", action="store_true", help="say what is provable; send nothing")
    ch.set_defaults(func=cmd_challenge)

    bond = sub.add_parser("bond", help="the bond behind an aggregator's publishes or a validator's attestations").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    for name, text in (("deposit", "add AMOUNT DGPT to your bond"), ("withdraw", "take back AMOUNT DGPT no proposal or attestation locks")):
        b = bond.add_parser(name, parents=[common, keyed], help=text)
        b.add_argument("amount", help="in DGPT")
        b.set_defaults(func=cmd_bond)

    keys = sub.add_parser("keys", help="signing keys").add_subparsers(dest="action", required=True, metavar="ACTION")
    kn = keys.add_parser("new", help="create an encrypted keystore file; prints its address")
    kn.add_argument("--out", required=True)
    kn.add_argument("--password-file")
    kn.set_defaults(func=cmd_keys_new)

    from aggregator.cli import add_commands as add_aggregator
    from oracle.cli import add_commands as add_oracle
    from validator.cli import add_commands as add_validator

    add_oracle(sub, common, keyed)
    add_aggregator(sub, common, keyed)
    add_validator(sub, common, keyed)

    dataset = sub.add_parser("dataset", help="dataset commitments").add_subparsers(dest="action", required=True, metavar="ACTION")
    dc = dataset.add_parser("commitment", parents=[common], help="the dataset commitment of a labelled data set: manifest CID, Merkle root, count (the manifest goes to the store)")
    dc.add_argument("file", metavar="FILE", help="JSONL or CSV with text and label")
    dc.add_argument("--labels", help="comma-separated label names (omit for unlabelled text)")
    dc.add_argument("--json", action="store_true")
    dc.set_defaults(func=cmd_dataset_commitment)
    add_alias(dataset, "commit", dc, "dgpt dataset commitment")
    rt = dataset.add_parser("rotten-tomatoes", help="write the Rotten Tomatoes snippets (shipped offline) as oracle shards, a validation and a test set, split by movie")
    rt.add_argument("--out", required=True, help="output directory: shard-0.jsonl .. shard-N-1.jsonl, validation.jsonl, test.jsonl")
    rt.add_argument("--shards", type=int, default=4, help="one per oracle, disjoint (default 4)")
    rt.add_argument("--per-shard", type=int, help="cap each shard at this many snippets (default: all)")
    rt.add_argument("--validation", type=int, help="cap the validation set (default: all, about 950)")
    rt.add_argument("--test", type=int, help="cap the test set (default: all, about 1,900)")
    rt.set_defaults(func=cmd_dataset_rotten_tomatoes)

    model = sub.add_parser("model", help="model files").add_subparsers(dest="action", required=True, metavar="ACTION")
    init = model.add_parser("init", help="write a genesis model file: the tiny GPT-2 (default), a GGUF or a Hugging Face directory")
    init.add_argument("--out", required=True, help="output .safetensors")
    src = init.add_mutually_exclusive_group()
    src.add_argument("--gguf", help="a GGUF file (e.g. SmolLM2), dequantised")
    src.add_argument("--hf-dir", help="a local Hugging Face model directory (GPT-2 or Llama family)")
    init.add_argument("--seed", type=int, default=0)
    init.set_defaults(func=cmd_model_init)
    apply = model.add_parser("apply", help="MODEL + DELTA -> OUT: a worker's fine-tuned model as a model file")
    apply.add_argument("--model", required=True, help="the base model file the delta was made for")
    apply.add_argument("--delta", required=True, help="a delta file (any encoding)")
    apply.add_argument("--out", required=True, help="output .safetensors")
    apply.set_defaults(func=cmd_model_apply)
    export = model.add_parser("export", parents=[common], help="a model file or CID -> a Hugging Face directory transformers loads")
    export.add_argument("--model", required=True, help="a model file, a model CID fetched from the store, or `latest`: the network's latest final model")
    export.add_argument("--out", required=True, help="output directory (config, safetensors weights, tokenizer)")
    export.set_defaults(func=cmd_model_export)

    worker = sub.add_parser("worker", help="the GPU worker: L3 fine-tuning and evaluation").add_subparsers(dest="action", required=True, metavar="ACTION")
    wtrain = worker.add_parser("train", help="train MODEL on DATA as TASK says; write the weight delta to OUT (several GPUs: torchrun -m dgpt.train)")
    for a in ("model", "task", "data", "out"):
        wtrain.add_argument(f"--{a}", required=True)
    wtrain.add_argument("--device")
    wtrain.add_argument("--compile", action="store_true", help="torch.compile the step (GPU)")
    wtrain.set_defaults(func=cmd_worker_train)
    weval = worker.add_parser("eval", help="accuracy, L1, L2 and L3 of MODEL on labelled DATA")
    for a in ("model", "task", "data"):
        weval.add_argument(f"--{a}", required=True)
    weval.add_argument("--device")
    weval.add_argument("--json", action="store_true")
    weval.set_defaults(func=cmd_worker_eval)
    return parser


def _rpc_outage(exc: OSError) -> bool:
    """A connection error of `requests` (web3's transport; an OSError subclass). Checked without
    importing requests: if it was never loaded, this cannot be one of its errors."""
    errors = sys.modules.get("requests.exceptions")
    return errors is not None and isinstance(exc, errors.ConnectionError)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except DGPTError as exc:
        print(f"dgpt: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        if _rpc_outage(exc):  # the chain's RPC went away and did not come back within the retries
            print(f"dgpt: error: the chain stopped answering ({exc.__class__.__name__}: {str(exc)[:200]}); "
                  "when it is back, run the command again: journals resume where it stopped", file=sys.stderr)
            return 1
        # e.g. a full disk; every write is to a temporary file renamed into place
        print(f"dgpt: error: {exc.strerror or exc} ({exc.filename or 'I/O'}); fix it and run the command again", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("dgpt: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
