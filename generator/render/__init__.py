"""Renderers: the only package that imports torch, diffusers or gfpgan, and lazily.

``base`` holds the interface the build talks to; importing it stays cheap.
"""
