"""The toolbox's PyQt5 window (the only Qt code of the project).

* :mod:`toolbox.ui.workers`: runs controller calls on a thread pool and reports through signals;
* :mod:`toolbox.ui.plots`: matplotlib canvases (embeddings, mels, attention, UMAP);
* :mod:`toolbox.ui.main_window`: :class:`~toolbox.ui.main_window.ToolboxWindow`, which forwards every
  action to a :class:`~toolbox.controller.ToolboxController` and displays the results.
"""
