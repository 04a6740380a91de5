from engine_support import IMAGE_REF
def test_priv(docker_engine):
    for rt in ("runc", "pyrunc"):
        r = docker_engine.docker("run", "--rm", "--runtime", rt, "--network", "none", "--privileged", IMAGE_REF, "sh", "-c", "grep Cap /proc/self/status", check=False)
        print(rt, r.returncode, r.stdout, r.stderr)
