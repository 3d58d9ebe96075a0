"""The blind ground-truth review (the paper's radiologist study, library:
``HeadRegistrationLib.evaluate.review``): two results of each pair shown as A (top row of slice
views) and B (bottom row) in random allocation, answered with A, B or S (both).

``HeadRegistrationReview`` is the review on MRML (no Qt); ``ReviewPanel`` its part of the
module panel (buttons, labels, keys)."""

import logging
import os

import qt
import slicer

from HeadRegistrationLib.core import transform_io
from HeadRegistrationLib.evaluate import review
from HeadRegistrationLib.core.errors import HeadRegError, one_line

from . import mrml

logger = logging.getLogger(__name__)

REVIEW_BUTTONS = {"reviewAButton": "A", "reviewBButton": "B", "reviewBothButton": "Both"}
REVIEW_KEYS = {"A": "A", "B": "B", "S": "Both"}
REVIEW_LAYOUT_ID = 50201  # a custom layout id (Slicer's own layouts are below 100)
REVIEW_VIEWS = {"A": ("HeadRegReviewA1", "HeadRegReviewA2", "HeadRegReviewA3"),
                "B": ("HeadRegReviewB1", "HeadRegReviewB2", "HeadRegReviewB3")}
REVIEW_ORIENTATIONS = (("Axial", "#F34A33"), ("Sagittal", "#EDD54C"), ("Coronal", "#6EB04B"))


def reviewLayoutDescription() -> str:
    """Slicer layout XML: results A on the top row and B on the bottom row, each as axial,
    sagittal and coronal slice views labelled "A" or "B"."""
    rows = []
    for result, views in REVIEW_VIEWS.items():
        items = "".join(
            f'<item><view class="vtkMRMLSliceNode" singletontag="{view}">'
            f'<property name="orientation" action="default">{orientation}</property>'
            f'<property name="viewlabel" action="default">{result}</property>'
            f'<property name="viewcolor" action="default">{color}</property>'
            f'<property name="viewgroup" action="default">0</property></view></item>'
            for view, (orientation, color) in zip(views, REVIEW_ORIENTATIONS))
        rows.append(f'<item><layout type="horizontal">{items}</layout></item>')
    return f'<layout type="vertical">{"".join(rows)}</layout>'


def loadVolumeHidden(path: str, name: str):
    """Load a volume file into slicer.mrmlScene without showing it."""
    return slicer.util.loadVolume(path, properties={"name": name, "show": False})


def showReviewPair(fixedVolume, movingVolumes: dict, matrices: dict) -> list:
    """Show a pair as results "A" (top row of the review layout) and "B" (bottom row):
    the fixed volume as background in all six views and ``movingVolumes["A"]`` /
    ``["B"]`` (two nodes of the same moving volume) as foreground, each under a new
    transform node made from ``matrices["A"]`` / ``["B"]`` (fixed->moving, LPS). The views
    are linked, so they move together. Returns the transform nodes created."""
    scene = fixedVolume.GetScene()
    layoutNode = scene.GetFirstNodeByClass("vtkMRMLLayoutNode")
    if layoutNode is None:
        raise HeadRegError("the scene has no layout node: the review needs Slicer's slice views")
    if not layoutNode.IsLayoutDescription(REVIEW_LAYOUT_ID):
        layoutNode.AddLayoutDescription(REVIEW_LAYOUT_ID, reviewLayoutDescription())
    transforms = []
    for result in ("A", "B"):
        transform = mrml.writeTransformNode(matrices[result], None, fixedVolume, movingVolumes[result])
        transform.SetName(scene.GenerateUniqueName(f"Review result {result}"))
        transforms.append(transform)
    layoutNode.SetViewArrangement(REVIEW_LAYOUT_ID)
    composites = {node.GetLayoutName(): node for node in
                  (scene.GetNthNodeByClass(i, "vtkMRMLSliceCompositeNode")
                   for i in range(scene.GetNumberOfNodesByClass("vtkMRMLSliceCompositeNode")))}
    for result, views in REVIEW_VIEWS.items():
        for view in views:
            if view not in composites:
                raise HeadRegError(f"the review layout's slice view {view} was not created")
            composite = composites[view]
            composite.SetBackgroundVolumeID(fixedVolume.GetID())
            composite.SetForegroundVolumeID(movingVolumes[result].GetID())
            composite.SetForegroundOpacity(0.5)
            composite.SetLinkedControl(True)
    if mrml.hasSliceViews():
        slicer.util.resetSliceViews()
    return transforms


class HeadRegistrationReview:
    """A blind A/B review in progress: the pairs of a ground-truth batch folder and of a
    second folder of transforms, shown one at a time in random allocation, the answers
    saved after each click (so a review resumes), and the nodes of the pair on screen
    (removed when the next pair comes)."""

    def __init__(self, firstFolder, secondFolder, answersPath, seed=0, loadVolume=loadVolumeHidden):
        self.pairs = review.review_order(review.find_pairs(firstFolder, secondFolder), seed)
        self.labels = review.folder_labels(firstFolder, secondFolder)
        self.answersPath, self.seed, self.loadVolume = str(answersPath), seed, loadVolume
        self.answers = review.read_answers(self.answersPath)
        for row in self.answers.values():
            if {row["shown_as_a"], row["shown_as_b"]} != set(self.labels):
                raise HeadRegError(f"{self.answersPath} holds answers of a review of "
                                   f"{row['shown_as_a']} and {row['shown_as_b']}, not of "
                                   f"{self.labels[0]} and {self.labels[1]}: choose another answers file")
        self.current = None
        self.nodes = []
        self.problems = {}  # pair id: why it could not be shown
        self.layoutBefore = None  # the layout to restore when the review closes

    def showNext(self):
        """Show the next unanswered pair and return it, or None when all are answered. A pair
        that cannot be shown (a missing or unreadable file) is skipped for this session and
        named in ``problems``; the review goes on."""
        self.clear()
        while True:
            pair = review.next_pair([p for p in self.pairs if p.id not in self.problems], self.answers)
            if pair is None:
                return None
            try:
                self._show(pair)
            except Exception as error:  # any reader's failure: skip the pair, keep the review going
                self.clear()
                self.problems[pair.id] = one_line(error)
                logger.warning(f"review: pair {pair.id} skipped: {self.problems[pair.id]}")
                continue
            self.current = pair
            return pair

    def _show(self, pair) -> None:
        matrices = [transform_io.read_transform(path) for path in pair.transforms]
        if not review.first_is_a(pair.id, self.seed):
            matrices.reverse()
        fixed = self.loadVolume(str(pair.fixed), f"{pair.id} fixed")
        self.nodes.append(fixed)
        layoutNode = fixed.GetScene().GetFirstNodeByClass("vtkMRMLLayoutNode")
        if self.layoutBefore is None and layoutNode is not None:
            self.layoutBefore = layoutNode.GetViewArrangement()
        moving = {}
        for result in ("A", "B"):
            moving[result] = self.loadVolume(str(pair.moving), f"{pair.id} moving {result}")
            self.nodes.append(moving[result])
        self.nodes.extend(showReviewPair(fixed, moving, dict(zip(("A", "B"), matrices))))

    def answer(self, choice: str) -> None:
        """Save "A", "B" or "Both" for the pair on screen."""
        if self.current is None:
            raise HeadRegError("no pair is being reviewed")
        self.answers = review.record_answer(self.answersPath, self.answers, self.current, self.labels, choice,
                                            self.seed)

    def progressText(self) -> str:
        answered = sum(pair.id in self.answers for pair in self.pairs)
        lines = [f"{answered} of {len(self.pairs)} pairs answered"
                 + (f"; showing {self.current.id}: top row A, bottom row B" if self.current else "")]
        lines.extend(f"Skipped {pairId}: {reason}" for pairId, reason in self.problems.items())
        return "\n".join(lines)

    def summaryText(self) -> str:
        return review.summary_text(self.answers, self.labels)

    def clear(self) -> None:
        """Remove the nodes of the pair on screen (volumes loaded for it, its transforms)."""
        for node in self.nodes:
            scene = node.GetScene()
            if scene is None:
                continue
            for helper in (getattr(node, "GetDisplayNode", None), getattr(node, "GetStorageNode", None)):
                if helper is not None and helper() is not None:
                    scene.RemoveNode(helper())
            scene.RemoveNode(node)
        self.nodes = []
        self.current = None

    def close(self, scene) -> None:
        """Remove the pair on screen and give ``scene`` its layout from before the review."""
        self.clear()
        layoutNode = scene.GetFirstNodeByClass("vtkMRMLLayoutNode")
        if self.layoutBefore is not None and layoutNode is not None:
            layoutNode.SetViewArrangement(self.layoutBefore)
        self.layoutBefore = None


class ReviewPanel:
    """The review's part of the module panel (``ui``: the widgets of HeadRegistration.ui).
    The keys A, B and S answer only while a pair is on screen and the module is shown."""

    def __init__(self, ui) -> None:
        self.ui = ui
        self.review = None          # the HeadRegistrationReview in progress
        self._shortcuts = []
        for button, choice in REVIEW_BUTTONS.items():
            getattr(ui, button).connect("clicked(bool)", lambda checked, c=choice: self.answer(c))
        self._showState()

    def start(self) -> None:
        """Open the two folders and show the first unanswered pair. The answers file defaults
        to review-answers.csv in the ground-truth folder; an existing one is resumed."""
        self.close()
        first = self.ui.reviewFirstFolderButton.directory
        second = self.ui.reviewSecondFolderButton.directory
        answers = self.ui.reviewAnswersPathLineEdit.currentPath or os.path.join(first, "review-answers.csv")
        try:
            self.review = HeadRegistrationReview(first, second, answers)
        except HeadRegError as error:
            slicer.util.errorDisplay(f"The review cannot start:\n{error}", windowTitle="Head Registration")
            return
        self.ui.reviewAnswersPathLineEdit.currentPath = answers
        self.setShortcuts(True)
        self._showNext()

    def answer(self, choice: str) -> None:
        if self.review is None or self.review.current is None:
            return
        with slicer.util.tryWithErrorDisplay("The answer could not be saved.", waitCursor=True):
            self.review.answer(choice)
            self._showNext()

    def _showNext(self) -> None:
        try:
            with slicer.util.tryWithErrorDisplay("The next pair could not be shown.", waitCursor=True):
                self.review.showNext()
        finally:  # tryWithErrorDisplay re-raises a bug after its dialog: the panel is still put right
            self._showState()
            if self.review.current is None:
                self.close()

    def _showState(self) -> None:
        reviewing = self.review is not None and self.review.current is not None
        for button in REVIEW_BUTTONS:
            getattr(self.ui, button).enabled = reviewing
        if self.review is not None:
            self.ui.reviewProgressLabel.text = self.review.progressText()
            self.ui.reviewSummaryLabel.text = self.review.summaryText()

    def close(self) -> None:
        """End the review on screen (its answers are saved already): remove its nodes, give
        back the layout and the keys."""
        self.setShortcuts(False)
        if self.review is not None:
            self.review.close(slicer.mrmlScene)
            self.review = None
        self._showState()

    def setShortcuts(self, on: bool) -> None:
        """Keys A, B and S answer "A", "B" and "Both" (on only while a review is open)."""
        for shortcut in self._shortcuts:
            shortcut.disconnect("activated()")
            shortcut.setParent(None)
        self._shortcuts = []
        window = slicer.util.mainWindow()
        if on and self.review is not None and window is not None:
            for key, choice in REVIEW_KEYS.items():
                shortcut = qt.QShortcut(qt.QKeySequence(key), window)
                shortcut.connect("activated()", lambda c=choice: self.answer(c))
                self._shortcuts.append(shortcut)
