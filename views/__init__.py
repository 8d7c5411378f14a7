"""The dashboard's pages, one file each, framed by ``app.py`` through ``st.navigation``.

``common`` is the Streamlit wiring every page shares: the server's stores and job queue, the
forward pass, pictures kept for the screen, the context the entry computes once per run
(``Context``), and links between pages (``go_to`` and ``followed_link``). The pages:
``feature_maps``, ``one_channel``, ``why``, ``filters``, ``compare``, ``dataset``,
``statistics``, ``model``. Pages import ``views.common`` and ``actviz``, never ``app``; everything
computed comes from the ``actviz`` package, which never imports this folder.
"""
