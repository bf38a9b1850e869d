"""evalkit.backends.llama_cpp is a package named like the library it wraps: its modules must still
bind the third-party llama-cpp-python (absolute imports), and nothing outside it may reach in."""

from pathlib import Path

import llama_cpp

import evalkit
from evalkit.backends.llama_cpp import backend, log, mtp, native


def test_the_package_modules_bind_the_third_party_llama_cpp():
    assert Path(llama_cpp.__file__).parent.name == "llama_cpp" and hasattr(llama_cpp, "Llama")
    for mod in (backend, log, mtp, native):
        assert mod.llama_cpp is llama_cpp, mod.__name__


def test_no_module_outside_the_package_imports_llama_cpp_python():
    root = Path(evalkit.__file__).parent
    inside = root / "backends" / "llama_cpp"
    importing = [
        p for p in root.rglob("*.py")
        if any(ln.strip().startswith(("import llama_cpp", "from llama_cpp")) for ln in p.read_text().splitlines())
    ]
    assert inside / "backend.py" in importing  # the scan sees the imports that are there
    assert [str(p.relative_to(root)) for p in importing if inside not in p.parents] == []
