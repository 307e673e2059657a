"""Everything the stand-in's ``qt`` module offers, gathered from its parts (one import for the rest of the
stand-in, and the namespace ``import qt`` gets)."""

from __future__ import annotations

from slicer_standin.qt_core import LOOP, BoundSignal, QObject, QTimer
from slicer_standin.qt_enums import QAbstractItemView, Qt, _Enum
from slicer_standin.qt_item_views import (QAbstractItemViewWidget, QHeaderView, QModelIndex, QTableWidget,
                                          QTableWidgetItem)
from slicer_standin.qt_layouts import (QBoxLayout, QFormLayout, QGridLayout, QHBoxLayout, QLayout, QLayoutItem,
                                       QVBoxLayout)
from slicer_standin.qt_services import (DIALOGS, SETTINGS, DialogAnswers, QApplication, QColor, QCursor,
                                        QDesktopServices, QDialog, QDir, QFileDialog, QIcon, QMessageBox, QSettings,
                                        QSize, QUrl, SettingsStore)
from slicer_standin.qt_widgets import (QAbstractButton, QAbstractSpinBox, QCheckBox, QComboBox, QDoubleSpinBox,
                                       QFrame, QLabel, QLineEdit, QPlainTextEdit, QProgressBar, QPushButton,
                                       QRadioButton, QSpinBox, QToolButton, QWidget)

__all__ = ["LOOP", "BoundSignal", "DIALOGS", "SETTINGS", "DialogAnswers", "SettingsStore", "_Enum", "QObject",
           "QTimer", "QAbstractItemView", "Qt", "QAbstractItemViewWidget", "QHeaderView", "QModelIndex",
           "QTableWidget", "QTableWidgetItem", "QBoxLayout", "QFormLayout", "QGridLayout", "QHBoxLayout", "QLayout",
           "QLayoutItem", "QVBoxLayout", "QApplication", "QColor", "QCursor", "QDesktopServices", "QDialog", "QDir",
           "QFileDialog", "QIcon", "QMessageBox", "QSettings", "QSize", "QUrl", "QAbstractButton",
           "QAbstractSpinBox", "QCheckBox", "QComboBox", "QDoubleSpinBox", "QFrame", "QLabel", "QLineEdit",
           "QPlainTextEdit", "QProgressBar", "QPushButton", "QRadioButton", "QSpinBox", "QToolButton", "QWidget"]


def public_classes() -> dict[str, object]:
    """What ``import qt`` offers in the stand-in: Qt's class and namespace names (not the stand-in's helpers)."""
    helpers = {"LOOP", "BoundSignal", "DIALOGS", "SETTINGS", "DialogAnswers", "SettingsStore", "_Enum",
               "QAbstractItemViewWidget"}
    return {name: globals()[name] for name in __all__ if name not in helpers}
