"""genimg: a static blog-gallery generator for pictures made by Stable Diffusion.

Importing this package must stay cheap: nothing here (or in any module but
``generator.render``) imports torch, diffusers or gfpgan.
"""

__version__ = "0.1.0"
