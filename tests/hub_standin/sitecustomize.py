"""Start-up hook: with ``$MINECP_HUB_STANDIN_DIR`` set, ``datasets.load_dataset`` answers from that
mirror as the Hub would (see ``minecp_hub_standin``). Python imports ``sitecustomize`` when the
interpreter starts, so putting this folder on ``PYTHONPATH`` activates the stand-in in every
process started with it, Jupyter kernels included. ``datasets`` is patched when it is first
imported, not here: importing it at every start-up would cost a second.
"""

import os
import sys

if os.environ.get("MINECP_HUB_STANDIN_DIR"):
    import importlib.abc
    import importlib.machinery

    class _PatchDatasetsOnImport(importlib.abc.MetaPathFinder):
        def find_spec(self, fullname, path=None, target=None):
            if fullname != "datasets":
                return None
            sys.meta_path.remove(self)  # once only; let the normal finders locate the package
            spec = importlib.machinery.PathFinder.find_spec(fullname, path)
            if spec is None or spec.loader is None:
                return spec
            exec_module = spec.loader.exec_module

            def exec_and_patch(module):
                exec_module(module)
                import minecp_hub_standin

                minecp_hub_standin.install(module)

            spec.loader.exec_module = exec_and_patch
            return spec

    sys.meta_path.insert(0, _PatchDatasetsOnImport())
