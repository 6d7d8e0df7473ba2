"""The toolbox's PyQt5 window (the only Qt code of the project).

* :mod:`toolbox.ui.main_window`: :class:`~toolbox.ui.main_window.ToolboxWindow`, which runs every
  action of a :class:`~toolbox.controller.ToolboxController` as a job and composes the panels:
  :mod:`~toolbox.ui.reference_panel`, :mod:`~toolbox.ui.history_panel`, :mod:`~toolbox.ui.models_panel`,
  :mod:`~toolbox.ui.generation_panel` and :mod:`~toolbox.ui.plots_panel`, one per box of the window;
* :mod:`toolbox.ui.session`: what the panels share (the controller, state, signals): they talk through it;
* :mod:`toolbox.ui.workers`: runs controller calls on a thread pool and reports through signals;
* :mod:`toolbox.ui.plots`: matplotlib canvases (embeddings, mels, attention, UMAP).
"""
