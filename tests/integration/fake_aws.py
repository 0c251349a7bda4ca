#!/usr/bin/env python3
"""A fake `aws` command line for mcwarm-ctl's ec2 backend: `aws [--region R] ec2 <op> ...
--output text`, answering as the real one does for the calls the backend makes, with a
real block device behind each attachment (a loop device on the volume's image file, found
under $MCW_EBS_BYID_DIR/<instance>/nvme-Amazon_Elastic_Block_Store_vol<id> as on a Nitro
instance). Every call is appended to $FAKE_AWS_DIR/calls.log (one JSON list per line).

Failures on demand:
  FAKE_AWS_THROTTLE=N         the next N calls fail with RequestLimitExceeded
  FAKE_AWS_STUCK=INSTANCE     attachments to INSTANCE stay 'attaching' forever
  FAKE_AWS_ZONES=I=Z,...      instance I is in availability zone Z (default us-east-1a)
A volume a test puts into state.json may carry "type", "multi_attach" and "zone" (default
io2, true, us-east-1a) and attachments without a device (other instances).
"""
import fcntl
import json
import os
import re
import subprocess
import sys

HOME = os.environ["FAKE_AWS_DIR"]
STATE = os.path.join(HOME, "state.json")


def fail(code, op, message, status=254):
    sys.stderr.write("\nAn error occurred (%s) when calling the %s operation: %s\n" %
                     (code, op, message))
    sys.exit(status)


def opt(args, name, default=None):
    return args[args.index(name) + 1] if name in args else default


def byid(instance, vol):
    tmpl = os.environ.get("MCW_EBS_BYID_DIR", os.path.join(HOME, "byid", "%i"))
    d = tmpl.replace("%i", instance)
    return d, os.path.join(d, "nvme-Amazon_Elastic_Block_Store_" + vol.replace("-", ""))


def main():
    argv = sys.argv[1:]
    lock = open(os.path.join(HOME, "lock"), "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    with open(os.path.join(HOME, "calls.log"), "a") as log:
        log.write(json.dumps(argv) + "\n")
    st = json.load(open(STATE)) if os.path.exists(STATE) else {
        "volumes": {}, "next": 1, "throttled": 0}
    try:
        out = handle(argv, st)
    finally:
        json.dump(st, open(STATE + ".tmp", "w"))
        os.rename(STATE + ".tmp", STATE)
    if out is not None:
        print(out)


def handle(argv, st):
    if "--region" in argv:
        i = argv.index("--region")
        argv = argv[:i] + argv[i + 2:]
    if argv[:1] != ["ec2"] or argv[-2:] != ["--output", "text"]:
        fail("Usage", "aws", "fake aws: unexpected command line %r" % argv, status=252)
    op, args = argv[1], argv[2:-2]
    opname = "".join(w.capitalize() for w in op.split("-"))
    throttle = int(os.environ.get("FAKE_AWS_THROTTLE", "0"))
    if st["throttled"] < throttle:
        st["throttled"] += 1
        fail("RequestLimitExceeded", opname, "Request limit exceeded.")
    vols = st["volumes"]
    query = opt(args, "--query")

    if op == "create-volume":
        for need in ("--availability-zone", "--size", "--volume-type", "--iops"):
            if need not in args:
                fail("MissingParameter", opname, "missing %s" % need)
        if opt(args, "--volume-type") != "io2" or "--multi-attach-enabled" not in args:
            fail("InvalidParameterCombination", opname, "multi-attach needs io2")
        vid = "vol-%017x" % (0xabc000 + st["next"])
        st["next"] += 1
        tag = re.search(r"Key=mcwarm,Value=([^}\]]+)", opt(args, "--tag-specifications", ""))
        img = os.path.join(HOME, vid + ".img")
        with open(img, "wb") as f:
            f.truncate(int(opt(args, "--size")) << 30)
        vols[vid] = {"state": "creating", "polls": 0, "tag": tag.group(1) if tag else "",
                     "image": img, "attachments": {}, "type": opt(args, "--volume-type"),
                     "multi_attach": True, "zone": opt(args, "--availability-zone")}
        if query != "VolumeId":
            fail("Usage", opname, "fake aws: unexpected query %r" % query, status=252)
        return vid

    if op == "describe-volumes":
        if "--filters" in args:
            m = re.fullmatch(r"Name=tag:mcwarm,Values=(.+)", opt(args, "--filters"))
            found = [v for v, d in vols.items() if m and d["tag"] == m.group(1)]
            if query != "Volumes[0].VolumeId":
                fail("Usage", opname, "fake aws: unexpected query %r" % query, status=252)
            return found[0] if found else "None"
        vid = opt(args, "--volume-ids")
        if vid not in vols:
            fail("InvalidVolume.NotFound", opname, "The volume '%s' does not exist." % vid)
        d = vols[vid]
        if query == "Volumes[0].State":
            if d["state"] == "creating":
                d["polls"] += 1
                if d["polls"] > 1:
                    d["state"] = "available"
                return "creating"
            return "in-use" if d["attachments"] else "available"
        if query == ("Volumes[0].[VolumeType,MultiAttachEnabled,AvailabilityZone,"
                     "length(Attachments)]"):
            return "%s\t%s\t%s\t%d" % (d.get("type", "io2"),
                                       "True" if d.get("multi_attach", True) else "False",
                                       d.get("zone", "us-east-1a"), len(d["attachments"]))
        if query == "Volumes[0].Attachments[].InstanceId":
            return "\t".join(d["attachments"])
        m = re.fullmatch(r"Volumes\[0\]\.Attachments\[\?InstanceId=='([^']+)'\]\.State \| \[0\]",
                         query or "")
        if not m:
            fail("Usage", opname, "fake aws: unexpected query %r" % query, status=252)
        a = d["attachments"].get(m.group(1))
        if a is None:
            return "None"
        state = a["state"]
        if state == "attaching" and os.environ.get("FAKE_AWS_STUCK") != m.group(1):
            a["state"] = "attached"
            attach_device(d, vid, m.group(1), a)
        elif state == "detaching":
            del d["attachments"][m.group(1)]
        return state

    if op == "describe-instances":
        if query != "Reservations[0].Instances[0].Placement.AvailabilityZone":
            fail("Usage", opname, "fake aws: unexpected query %r" % query, status=252)
        zones = dict(z.split("=", 1) for z in
                     os.environ.get("FAKE_AWS_ZONES", "").split(",") if "=" in z)
        return zones.get(opt(args, "--instance-ids"), "us-east-1a")

    if op == "attach-volume":
        vid, inst = opt(args, "--volume-id"), opt(args, "--instance-id")
        if vid not in vols:
            fail("InvalidVolume.NotFound", opname, "The volume '%s' does not exist." % vid)
        d = vols[vid]
        if d["state"] == "creating":
            fail("IncorrectState", opname, "vol is 'creating'")
        if inst in d["attachments"]:
            fail("VolumeInUse", opname, "%s is already attached to %s" % (vid, inst))
        if not opt(args, "--device"):
            fail("MissingParameter", opname, "missing --device")
        d["attachments"][inst] = {"state": "attaching", "device": None}
        return "attaching"

    if op == "detach-volume":
        vid, inst = opt(args, "--volume-id"), opt(args, "--instance-id")
        d = vols.get(vid)
        if d is None or inst not in d["attachments"]:
            fail("IncorrectState", opname, "%s is not attached to %s" % (vid, inst))
        a = d["attachments"][inst]
        detach_device(vid, inst, a)
        a["state"] = "detaching"
        return "detaching"

    if op == "delete-volume":
        vid = opt(args, "--volume-id")
        if vid not in vols:
            fail("InvalidVolume.NotFound", opname, "The volume '%s' does not exist." % vid)
        if vols[vid]["attachments"]:
            fail("VolumeInUse", opname, "Volume %s is currently attached" % vid)
        if os.path.exists(vols[vid]["image"]):
            os.remove(vols[vid]["image"])
        del vols[vid]
        return None

    fail("InvalidAction", opname, "fake aws: %s is not faked" % op, status=252)


def attach_device(d, vid, inst, a):
    dev = subprocess.run(["losetup", "--direct-io=on", "-f", "--show", d["image"]],
                         capture_output=True, text=True, check=True).stdout.strip()
    a["device"] = dev
    directory, link = byid(inst, vid)
    os.makedirs(directory, exist_ok=True)
    os.symlink(dev, link)


def detach_device(vid, inst, a):
    directory, link = byid(inst, vid)
    if os.path.lexists(link):
        os.remove(link)
    if a.get("device"):
        subprocess.run(["losetup", "-d", a["device"]], check=False)
        a["device"] = None


if __name__ == "__main__":
    main()
