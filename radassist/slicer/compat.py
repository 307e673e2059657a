"""Which Slicer RadAssist supports, checked before anything else of RadAssist is imported.

Written for every Python a Slicer ever shipped (no syntax newer than 3.6), because on an older Slicer this file runs
where the rest of RadAssist cannot even be imported: there the panel shows one sentence instead of a traceback.
"""

MINIMUM_SLICER = (5, 10)
MINIMUM_PYTHON = (3, 10)


def slicer_version():
    import slicer

    return int(slicer.app.majorVersion), int(slicer.app.minorVersion)


def unsupported_reason():
    """None on a supported Slicer; otherwise the one sentence the panel shows."""
    import sys

    version = slicer_version()
    if version < MINIMUM_SLICER or sys.version_info[:2] < MINIMUM_PYTHON:
        return ("RadAssist needs 3D Slicer {}.{} or later (this is Slicer {}.{} with Python {}.{}): install a "
                "current Slicer from https://download.slicer.org.".format(*MINIMUM_SLICER, *version,
                                                                          *sys.version_info[:2]))
    return None


def show_unsupported(widget, reason):
    """The whole panel of an unsupported Slicer: the reason, selectable."""
    import qt

    label = qt.QLabel(reason)
    label.wordWrap = True
    label.setTextInteractionFlags(qt.Qt.TextSelectableByMouse)
    widget.layout.addWidget(label)
    widget.layout.addStretch(1)


def parameterNodeWrapper(cls):  # noqa: N802 -- Slicer's name
    """Slicer's decorator where it exists (5.2 and later); on an older Slicer the class stays as it is (its panel
    only shows the unsupported-version sentence)."""
    try:
        from slicer.parameterNodeWrapper import parameterNodeWrapper as wrap
    except ImportError:
        return cls
    return wrap(cls)


class UnsupportedPanel(object):
    """What a module file gets instead of radassist.slicer.panel on an unsupported Slicer: the same names, with a
    Widget that shows the reason and nothing else, so the module file is written once for every Slicer."""

    CATEGORY = "RadAssist"
    CONTRIBUTORS = ["RadAssist developers"]
    ACKNOWLEDGEMENT = ""
    DeviceChoice = str

    def __init__(self, reason):
        from slicer.ScriptedLoadableModule import ScriptedLoadableModuleLogic, ScriptedLoadableModuleWidget

        self.reason = reason

        def setup(widget):
            ScriptedLoadableModuleWidget.setup(widget)
            show_unsupported(widget, reason)

        def nothing(widget, *args):
            return None

        class Widget(ScriptedLoadableModuleWidget):
            def __init_subclass__(cls, **kwargs):
                super().__init_subclass__(**kwargs)
                cls.setup, cls.enter, cls.exit, cls.cleanup = setup, nothing, nothing, nothing

        self.RadAssistWidget = Widget
        self.RadAssistLogic = ScriptedLoadableModuleLogic

    @staticmethod
    def help_text(what, paper, sample):
        return "<p>{}</p>".format(what)


def load_panel():
    """radassist.slicer.panel on a supported Slicer, else an :class:`UnsupportedPanel`."""
    reason = unsupported_reason()
    if reason is not None:
        return UnsupportedPanel(reason)
    from radassist.slicer import panel

    return panel
