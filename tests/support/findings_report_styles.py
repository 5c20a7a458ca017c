"""Hand-written pathology reports in the styles real (TCGA) reports are written in, with their findings.

Each case: a name, the raw text, the findings a pathologist reads from it (only the fields given are
checked; a field not given must be None), and ``cleaned``: what differs once the text went through
HistGen cleaning (``scripts.text.clean_report``), for the findings that cleaning destroys (see
``scripts/metrics/findings_rules.py``). Written by hand for these tests; no real patient data.
"""

from __future__ import annotations

from typing import Any

REPORT_STYLES: list[dict[str, Any]] = [
    {
        "name": "breast_tcga_numbered",
        "text": """SURGICAL PATHOLOGY REPORT
FINAL DIAGNOSIS:
1. Breast, left, modified radical mastectomy:
 - Infiltrating ductal carcinoma, Nottingham grade 2 of 3 (tubules 3, nuclei 2, mitoses 1).
 - Tumor size: 2.3 cm in greatest dimension.
 - Lymphovascular invasion: not identified.
 - All surgical margins are free of carcinoma.
2. Lymph nodes, left axillary, dissection:
 - Metastatic carcinoma in 2 of 15 lymph nodes (2/15).
 - pT2 pN1a
""",
        "expected": {"diagnosis": "invasive ductal carcinoma", "grade": "grade 2", "margin": "negative",
                     "lymph_nodes_positive": 2, "lymph_nodes_examined": 15, "lymph_node_status": "positive",
                     "lymphovascular_invasion": "absent", "pt_stage": "pt2", "pn_stage": "pn1",
                     "tumour_size_mm": 23.0},
        "cleaned": {"tumour_size_mm": 230.0},
    },
    {
        "name": "breast_synoptic",
        "text": """Specimen: Right breast, lumpectomy
Histologic Type: Invasive lobular carcinoma, classic type
Histologic Grade (Nottingham): Grade 2
Tumor Size: 1.8 cm
Margins: Uninvolved by invasive carcinoma
Lymph-Vascular Invasion: Absent
Lymph Nodes: 0/3 (sentinel lymph nodes negative)
Pathologic Stage: pT1c pN0(sn)
""",
        "expected": {"diagnosis": "invasive lobular carcinoma", "grade": "grade 2", "margin": "negative",
                     "lymph_nodes_positive": 0, "lymph_nodes_examined": 3, "lymph_node_status": "negative",
                     "lymphovascular_invasion": "absent", "pt_stage": "pt1", "pn_stage": "pn0",
                     "tumour_size_mm": 18.0},
        "cleaned": {"tumour_size_mm": 180.0},
    },
    {
        "name": "breast_free_text",
        "text": "Sections show an invasive ductal carcinoma, poorly differentiated, with extensive "
                "lymphovascular invasion. The carcinoma extends to the inked posterior margin. Seventeen "
                "lymph nodes are identified, all negative for malignancy (0/17).",
        "expected": {"diagnosis": "invasive ductal carcinoma", "grade": "poorly differentiated",
                     "margin": "positive", "lymph_nodes_positive": 0, "lymph_nodes_examined": 17,
                     "lymph_node_status": "negative", "lymphovascular_invasion": "present"},
    },
    {
        "name": "breast_ocr_upper",
        "text": """DIAGNOSIS:
LEFT BREAST: INFILTRATING DUCTAL CARCINORNA, MODIFIED BLOOM-RICHARDSON GRADE 3.
N0 LYMPHOVASCULAR INVASI0N IDENTIFIED.
MARGINS: NEGATIVE.
""",
        "expected": {"diagnosis": "invasive ductal carcinoma", "grade": "grade 3", "margin": "negative",
                     "lymphovascular_invasion": "absent"},
        "cleaned": {"grade": None},
    },
    {
        "name": "breast_dcis_only",
        "text": "Final diagnosis: Ductal carcinoma in situ, high nuclear grade, solid type, with comedonecrosis. "
                "Margins are clear (closest 4 mm). No invasive carcinoma identified.",
        "expected": {"diagnosis": "ductal carcinoma in situ", "margin": "negative", "grade": "high grade"},
    },
    {
        "name": "kidney_ccrcc_synoptic",
        "text": """A. Kidney, left, radical nephrectomy:
Histologic type: Clear cell renal cell carcinoma
Fuhrman nuclear grade: 3
Tumor size: 6.5 x 5.0 x 4.8 cm
Perineural invasion: not identified
Lymphovascular invasion: present
Margins: negative for tumor
Pathologic staging: pT3a pNX
""",
        "expected": {"diagnosis": "clear cell renal cell carcinoma", "grade": "fuhrman 3", "margin": "negative",
                     "lymphovascular_invasion": "present", "perineural_invasion": "absent",
                     "pt_stage": "pt3", "pn_stage": "pnx", "tumour_size_mm": 65.0},
        "cleaned": {"tumour_size_mm": 650.0},
    },
    {
        "name": "kidney_papillary_isup",
        "text": "Diagnosis: Papillary renal cell carcinoma, type 2. WHO/ISUP grade 3 of 4. Tumour measures "
                "4.2 cm. Renal sinus fat not involved. Surgical margins negative. pT1b N0.",
        "expected": {"diagnosis": "papillary renal cell carcinoma", "grade": "isup 3", "margin": "negative",
                     "pt_stage": "pt1", "pn_stage": "pn0", "lymph_node_status": "negative",
                     "tumour_size_mm": 42.0},
        "cleaned": {"tumour_size_mm": 420.0},
    },
    {
        "name": "kidney_chromophobe_abbrev",
        "text": "RIGHT KIDNEY: CHROMOPHOBE RENAL CELL CARCINOMA, 3.1 CM. MARGINS FREE. NO LVI.",
        "expected": {"diagnosis": "chromophobe renal cell carcinoma", "margin": "negative",
                     "lymphovascular_invasion": "absent", "tumour_size_mm": 31.0},
        "cleaned": {"tumour_size_mm": 310.0},
    },
    {
        "name": "prostate_gleason_numbered",
        "text": """1. Prostate, radical prostatectomy:
 Prostatic adenocarcinoma, acinar type.
 Gleason score 3+4=7 (Grade group 2).
 Perineural invasion present.
 Extraprostatic extension not identified.
 Margins: negative.
 pT2c pN0 (0/8 lymph nodes).
""",
        "expected": {"diagnosis": "acinar adenocarcinoma", "grade": "gleason 7", "margin": "negative",
                     "perineural_invasion": "present", "pt_stage": "pt2", "pn_stage": "pn0",
                     "lymph_nodes_positive": 0, "lymph_nodes_examined": 8, "lymph_node_status": "negative"},
    },
    {
        "name": "prostate_gleason_words",
        "text": "Adenocarcinoma of the prostate, Gleason score 4 + 5 = 9, involving both lobes. Extensive "
                "perineural invasion is seen. The tumour is present at the inked margin (apex). "
                "Lymph nodes: 1/6 positive.",
        "expected": {"diagnosis": "adenocarcinoma", "grade": "gleason 9", "margin": "positive",
                     "perineural_invasion": "present", "lymph_nodes_positive": 1, "lymph_nodes_examined": 6,
                     "lymph_node_status": "positive"},
    },
    {
        "name": "prostate_isup_grade_group",
        "text": "PROSTATE NEEDLE CORE BIOPSIES: ACINAR ADENOCARCINOMA, GLEASON PATTERN 4+4 (ISUP GRADE GROUP 4). "
                "PNI: ABSENT.",
        "expected": {"diagnosis": "acinar adenocarcinoma", "grade": "gleason 8", "perineural_invasion": "absent"},
    },
    {
        "name": "lung_squamous",
        "text": """DIAGNOSIS:
Lung, right upper lobe, lobectomy: Squamous cell carcinoma, moderately differentiated, keratinizing.
Visceral pleural invasion is not identified. No lymphovascular or perineural invasion.
Bronchial margin is negative. Peribronchial lymph nodes (0/4) negative for carcinoma.
AJCC: pT2a N0
""",
        "expected": {"diagnosis": "squamous cell carcinoma", "grade": "moderately differentiated",
                     "margin": "negative", "lymph_nodes_positive": 0, "lymph_nodes_examined": 4,
                     "lymph_node_status": "negative", "lymphovascular_invasion": "absent",
                     "perineural_invasion": "absent", "pt_stage": "pt2", "pn_stage": "pn0"},
    },
    {
        "name": "lung_adeno_free",
        "text": "The specimen shows invasive adenocarcinoma, acinar predominant, well to moderately "
                "differentiated, measuring 2.8 cm. Lymphovascular space invasion is present. Bronchial "
                "and vascular margins are uninvolved. Three of eleven lymph nodes contain metastatic "
                "adenocarcinoma.",
        "expected": {"diagnosis": "invasive adenocarcinoma", "grade": "well to moderately differentiated",
                     "margin": "negative", "lymph_nodes_positive": 3, "lymph_nodes_examined": 11,
                     "lymph_node_status": "positive", "lymphovascular_invasion": "present",
                     "tumour_size_mm": 28.0},
        "cleaned": {"tumour_size_mm": 280.0},
    },
    {
        "name": "lung_scc_abbrev_synoptic",
        "text": "Tumor type: SCC\nGrade: G3\nMargin status: close (0.1 cm from bronchial margin)\n"
                "LVI: yes\nPNI: no\nNodes: 2/9\n",
        "expected": {"diagnosis": "squamous cell carcinoma", "grade": "grade 3", "margin": "close",
                     "lymph_nodes_positive": 2, "lymph_nodes_examined": 9, "lymph_node_status": "positive",
                     "lymphovascular_invasion": "present", "perineural_invasion": "absent"},
        # "2/9" cleans to "29": two digits with no positive/negative word are not read as a ratio
        "cleaned": {"lymph_nodes_positive": None, "lymph_nodes_examined": None, "lymph_node_status": None},
    },
    {
        "name": "colon_tcga",
        "text": """FINAL DIAGNOSIS:
Colon, sigmoid, resection: Adenocarcinoma, moderately differentiated, invading through the muscularis
propria into pericolonic fat. Angiolymphatic invasion present. Perineural invasion not identified.
Proximal, distal and radial margins negative for tumor. Fifteen lymph nodes negative for tumor (0/15).
pT3 pN0
""",
        "expected": {"diagnosis": "adenocarcinoma", "grade": "moderately differentiated", "margin": "negative",
                     "lymph_nodes_positive": 0, "lymph_nodes_examined": 15, "lymph_node_status": "negative",
                     "lymphovascular_invasion": "present", "perineural_invasion": "absent",
                     "pt_stage": "pt3", "pn_stage": "pn0"},
    },
    {
        "name": "colon_mucinous_positive_nodes",
        "text": "Mucinous adenocarcinoma of the cecum, low grade. Tumour size 5.5 cm. Negative for "
                "lymphovascular invasion. Perineural invasion: present. Radial margin: involved. "
                "Number of lymph nodes examined: 22. Number of lymph nodes involved: 4. Stage pT4a pN2a.",
        "expected": {"diagnosis": "mucinous adenocarcinoma", "grade": "low grade", "margin": "positive",
                     "lymph_nodes_positive": 4, "lymph_nodes_examined": 22, "lymph_node_status": "positive",
                     "lymphovascular_invasion": "absent", "perineural_invasion": "present",
                     "pt_stage": "pt4", "pn_stage": "pn2", "tumour_size_mm": 55.0},
        # "involved: 4. Stage" loses its 4 in cleaning; "involved" still says positive
        "cleaned": {"tumour_size_mm": 550.0, "lymph_nodes_positive": None},
    },
    {
        "name": "colon_ocr_broken",
        "text": "COLON, RIGHT: ADENOCARCIN0MA, POORLY DIFFERENT-\nIATED. LYMPH0VASCULAR INVASION: NOT "
                "IDENTIFIED. PERINEURAL INVASI0N: NOT IDENTIFIED. ALL MARGINS UNINV0LVED.",
        "expected": {"diagnosis": "adenocarcinoma", "grade": "poorly differentiated", "margin": "negative",
                     "lymphovascular_invasion": "absent", "perineural_invasion": "absent"},
    },
    {
        "name": "melanoma_skin",
        "text": "Skin, back, wide excision: Malignant melanoma, superficial spreading type, Breslow thickness "
                "2.1 mm. Perineural invasion is absent. Lymphovascular invasion is absent. Peripheral and "
                "deep margins are free of melanoma. pT3a",
        "expected": {"diagnosis": "superficial spreading malignant melanoma", "margin": "negative",
                     "lymphovascular_invasion": "absent", "perineural_invasion": "absent", "pt_stage": "pt3"},
    },
    {
        "name": "glioblastoma_brain",
        "text": "BRAIN, LEFT TEMPORAL LOBE, RESECTION: GLIOBLASTOMA, IDH-WILDTYPE (WHO GRADE IV).",
        "expected": {"diagnosis": "glioblastoma", "grade": "grade 4"},
    },
    {
        "name": "bladder_urothelial",
        "text": "Diagnosis: High-grade invasive urothelial carcinoma invading the muscularis propria. "
                "Lymph-vascular invasion identified. Soft tissue margins negative. "
                "Lymph nodes, bilateral pelvic: metastatic carcinoma in one of twelve lymph nodes.",
        "expected": {"diagnosis": "invasive urothelial carcinoma", "grade": "high grade", "margin": "negative",
                     "lymph_nodes_positive": 1, "lymph_nodes_examined": 12, "lymph_node_status": "positive",
                     "lymphovascular_invasion": "present"},
    },
    {
        "name": "thyroid_papillary",
        "text": "Thyroid, total thyroidectomy: Papillary thyroid carcinoma, classical variant, 1.2 cm. "
                "Margins not involved. No lymphovascular invasion. Central compartment lymph nodes: "
                "2/5 involved. pT1b pN1a.",
        "expected": {"diagnosis": "papillary thyroid carcinoma", "margin": "negative",
                     "lymph_nodes_positive": 2, "lymph_nodes_examined": 5, "lymph_node_status": "positive",
                     "lymphovascular_invasion": "absent", "pt_stage": "pt1", "pn_stage": "pn1",
                     "tumour_size_mm": 12.0},
        "cleaned": {"tumour_size_mm": 120.0},
    },
    {
        "name": "endometrium_grade_roman",
        "text": "Uterus: Endometrioid adenocarcinoma, FIGO grade II, invading less than one half of the "
                "myometrium. LVSI: not identified. Margins negative. pT1a pN0 (0/10).",
        "expected": {"diagnosis": "endometrioid adenocarcinoma", "grade": "grade 2", "margin": "negative",
                     "lymph_nodes_positive": 0, "lymph_nodes_examined": 10, "lymph_node_status": "negative",
                     "lymphovascular_invasion": "absent", "pt_stage": "pt1", "pn_stage": "pn0"},
    },
    {
        "name": "stomach_signet",
        "text": "GASTRECTOMY: SIGNET RING CELL CARCINOMA, POORLY DIFFERENTIATED. PROXIMAL MARGIN POSITIVE "
                "FOR CARCINOMA. 7/23 LYMPH NODES WITH METASTATIC CARCINOMA. PERINEURAL INVASION PRESENT.",
        "expected": {"diagnosis": "signet ring cell carcinoma", "grade": "poorly differentiated",
                     "margin": "positive", "lymph_nodes_positive": 7, "lymph_nodes_examined": 23,
                     "lymph_node_status": "positive", "perineural_invasion": "present"},
    },
    {
        "name": "liver_hcc",
        "text": "Liver, segment 6, partial hepatectomy: Hepatocellular carcinoma, well differentiated "
                "(Edmondson-Steiner grade I), 3.5 cm. No vascular invasion. The resection margin is close "
                "(2 mm).",
        "expected": {"diagnosis": "hepatocellular carcinoma", "grade": "grade 1", "margin": "close",
                     "lymphovascular_invasion": "absent", "tumour_size_mm": 35.0},
        "cleaned": {"tumour_size_mm": 350.0},
    },
    {
        "name": "ovary_serous",
        "text": "Bilateral ovaries: High grade serous carcinoma. Omentum: involved by carcinoma. "
                "Lymphovascular invasion present. Lymph nodes negative.",
        "expected": {"diagnosis": "serous carcinoma", "grade": "high grade", "lymph_node_status": "negative",
                     "lymphovascular_invasion": "present"},
    },
    {
        "name": "negative_benign",
        "text": "Lymph node, excision: Reactive lymphoid hyperplasia. Negative for lymphoma. Six lymph nodes "
                "examined, all benign (0/6).",
        "expected": {"diagnosis": "lymphoid hyperplasia", "lymph_nodes_positive": 0, "lymph_nodes_examined": 6,
                     "lymph_node_status": "negative"},
    },
    {
        "name": "testis_seminoma",
        "text": "Testis, radical orchiectomy: Seminoma, classic type, 4.0 cm. Lymphovascular invasion: "
                "present. Spermatic cord margin: negative. pT2.",
        "expected": {"diagnosis": "seminoma", "margin": "negative", "lymphovascular_invasion": "present",
                     "pt_stage": "pt2", "tumour_size_mm": 40.0},
        "cleaned": {"tumour_size_mm": 400.0},
    },
    {
        "name": "pancreas_ductal_grade_end",
        "text": "Pancreas, Whipple: Invasive ductal adenocarcinoma, grade 2. Perineural invasion present. "
                "Margins: uncinate margin involved by carcinoma. Regional lymph nodes: 5/18 positive. ypT3 ypN2.",
        "expected": {"diagnosis": "invasive ductal adenocarcinoma", "grade": "grade 2", "margin": "positive",
                     "lymph_nodes_positive": 5, "lymph_nodes_examined": 18, "lymph_node_status": "positive",
                     "perineural_invasion": "present", "pt_stage": "pt3", "pn_stage": "pn2"},
        # "grade 2. Perineural" loses its 2 in cleaning
        "cleaned": {"grade": None},
    },
    {
        "name": "head_neck_scc_negations",
        "text": "Tongue, partial glossectomy: Invasive keratinizing squamous cell carcinoma, moderately "
                "differentiated. Depth of invasion 6 mm. Negative for perineural invasion. Without "
                "lymphovascular invasion. All margins are uninvolved; closest margin (deep) 3 mm.",
        "expected": {"diagnosis": "invasive keratinizing squamous cell carcinoma",
                     "grade": "moderately differentiated", "margin": "negative",
                     "lymphovascular_invasion": "absent", "perineural_invasion": "absent"},
    },
    # "<diagnosis>, <subtype> type" and lymph-node counts that are negated or follow "N of M" (read wrong once)
    {
        "name": "kidney_subtype_after_comma",
        "text": """FINAL DIAGNOSIS:
1. Kidney, left, radical nephrectomy:
 - Renal cell carcinoma, clear cell type.
 - Fuhrman nuclear grade 3 of 4.
 - Renal vein margin free of tumor.
2. Lymph nodes, hilar, excision:
 - 0 of 24 lymph nodes involved.
""",
        "expected": {"diagnosis": "clear cell renal cell carcinoma", "grade": "fuhrman 3", "margin": "negative",
                     "lymph_nodes_positive": 0, "lymph_nodes_examined": 24, "lymph_node_status": "negative"},
    },
    {
        "name": "colon_mucinous_type_nodes_negated",
        "text": "Sections show adenocarcinoma, mucinous type, moderately differentiated, invading through the "
                "muscularis propria into pericolic fat. No metastatic carcinoma in 20 lymph nodes. "
                "Lymphovascular invasion is not identified. Margins are free of tumor. pT3 pN0.",
        "expected": {"diagnosis": "mucinous adenocarcinoma", "grade": "moderately differentiated",
                     "margin": "negative", "lymph_nodes_positive": 0, "lymph_nodes_examined": 20,
                     "lymph_node_status": "negative", "lymphovascular_invasion": "absent", "pt_stage": "pt3",
                     "pn_stage": "pn0"},
    },
    {
        "name": "breast_lobular_type_node_sentence",
        "text": "DIAGNOSIS: Invasive carcinoma, lobular type, Nottingham grade 2 of 3. Tumour size 2.5 cm. "
                "Margins negative. 2 of 15 lymph nodes are positive for metastatic carcinoma. pT2 pN1a.",
        "expected": {"diagnosis": "invasive lobular carcinoma", "grade": "grade 2", "margin": "negative",
                     "lymph_nodes_positive": 2, "lymph_nodes_examined": 15, "lymph_node_status": "positive",
                     "pt_stage": "pt2", "pn_stage": "pn1", "tumour_size_mm": 25.0},
        "cleaned": {"tumour_size_mm": 250.0},
    },
    {
        "name": "breast_ductal_type_node_words",
        "text": "Left breast, mastectomy: Carcinoma, ductal type, well differentiated. Twenty lymph nodes, "
                "negative for metastatic carcinoma. No lymphovascular invasion. Margins clear.",
        "expected": {"diagnosis": "ductal carcinoma", "grade": "well differentiated", "margin": "negative",
                     "lymph_nodes_positive": 0, "lymph_nodes_examined": 20, "lymph_node_status": "negative",
                     "lymphovascular_invasion": "absent"},
    },
]

#: Written after the extractor's rules were settled and not used to tune them: the extractor's accuracy on
#: unseen wording (the docs report both numbers).
HELD_OUT_STYLES: list[dict[str, Any]] = [
    {
        "name": "breast_mastectomy_comment",
        "text": """PATHOLOGIC DIAGNOSIS:
A. RIGHT BREAST, SIMPLE MASTECTOMY:
   - INVASIVE DUCTAL CARCINOMA, NOTTINGHAM HISTOLOGIC GRADE 1 (SCORE 5/9).
   - TUMOR MEASURES 1.1 CM.
   - NO ANGIOLYMPHATIC INVASION IS SEEN.
   - SURGICAL MARGINS NEGATIVE; TUMOR IS 0.8 CM FROM THE DEEP MARGIN.
B. SENTINEL LYMPH NODE #1: ONE LYMPH NODE, NEGATIVE FOR METASTATIC CARCINOMA (0/1).
COMMENT: Prognostic markers will be reported separately.
""",
        "expected": {"diagnosis": "invasive ductal carcinoma", "grade": "grade 1", "margin": "negative",
                     "lymph_nodes_positive": 0, "lymph_nodes_examined": 1, "lymph_node_status": "negative",
                     "lymphovascular_invasion": "absent", "tumour_size_mm": 11.0},
        "cleaned": {"tumour_size_mm": 110.0},
    },
    {
        "name": "kidney_free_text",
        "text": "Renal cell carcinoma, clear cell type, Fuhrman grade 2, confined to the kidney. The tumor "
                "measures 3.7 cm in greatest dimension. Vascular margin and ureteral margin are free of tumor. "
                "Hilar lymph nodes: none identified.",
        "expected": {"diagnosis": "clear cell renal cell carcinoma", "grade": "fuhrman 2", "margin": "negative",
                     "tumour_size_mm": 37.0},
        "cleaned": {"tumour_size_mm": 370.0},
    },
    {
        "name": "prostate_synoptic_short",
        "text": "Histologic type: Acinar adenocarcinoma\nGleason Score: 4+3=7\nGrade Group: 3\n"
                "Perineural invasion: Present\nLymphovascular invasion: Not identified\n"
                "Margins: Positive (right posterior)\nRegional lymph nodes: 0/12\npT3a pN0",
        "expected": {"diagnosis": "acinar adenocarcinoma", "grade": "gleason 7", "margin": "positive",
                     "lymph_nodes_positive": 0, "lymph_nodes_examined": 12, "lymph_node_status": "negative",
                     "lymphovascular_invasion": "absent", "perineural_invasion": "present",
                     "pt_stage": "pt3", "pn_stage": "pn0"},
    },
    {
        "name": "lung_ocr_numbered",
        "text": "1. LUNG, LEFT LOWER LOBE: ADENOCARCINOMA, M0DERATELY DIFFERENTIATED, 3.0 CM.\n"
                "2. PLEURA NOT INVOLVED. VASCULAR INVASI0N PRESENT.\n3. BRONCHIAL MARGIN FREE OF TUMOR.\n"
                "4. LYMPH NODES (LEVEL 7): 1/3 POSITIVE.",
        "expected": {"diagnosis": "adenocarcinoma", "grade": "moderately differentiated", "margin": "negative",
                     "lymph_nodes_positive": 1, "lymph_nodes_examined": 3, "lymph_node_status": "positive",
                     "lymphovascular_invasion": "present", "tumour_size_mm": 30.0},
        "cleaned": {"tumour_size_mm": 300.0},
    },
    {
        "name": "colon_synoptic_nodes_words",
        "text": "Tumor site: Ascending colon\nHistologic type: Adenocarcinoma\nHistologic grade: Low-grade "
                "(moderately differentiated)\nLymphovascular invasion: Not identified\nPerineural invasion: "
                "Identified\nMargins: All margins negative for invasive carcinoma\nNumber of lymph nodes "
                "examined: 18\nNumber of lymph nodes involved: 0\npT3 pN0",
        "expected": {"diagnosis": "adenocarcinoma", "grade": "low grade", "margin": "negative",
                     "lymph_nodes_positive": 0, "lymph_nodes_examined": 18, "lymph_node_status": "negative",
                     "lymphovascular_invasion": "absent", "perineural_invasion": "present",
                     "pt_stage": "pt3", "pn_stage": "pn0"},
    },
    {
        "name": "bladder_negations",
        "text": "Urinary bladder, cystectomy: Invasive high grade urothelial carcinoma with squamous "
                "differentiation, invading perivesical fat. There is no evidence of lymphovascular invasion. "
                "Ureteral and urethral margins are negative. Lymph nodes: negative for carcinoma (0/14).",
        "expected": {"diagnosis": "invasive urothelial carcinoma", "grade": "high grade",
                     "margin": "negative", "lymph_nodes_positive": 0, "lymph_nodes_examined": 14,
                     "lymph_node_status": "negative", "lymphovascular_invasion": "absent"},
    },
    {
        "name": "stomach_intestinal",
        "text": "Stomach, distal gastrectomy: Adenocarcinoma, intestinal type, moderately to poorly "
                "differentiated. Tumour size 4.5 x 3.0 cm. Lymphovascular invasion: present. Perineural "
                "invasion: absent. Proximal and distal margins: uninvolved. Lymph nodes: 3/21.",
        "expected": {"diagnosis": "intestinal adenocarcinoma", "grade": "moderately to poorly differentiated",
                     "margin": "negative", "lymph_nodes_positive": 3, "lymph_nodes_examined": 21,
                     "lymph_node_status": "positive", "lymphovascular_invasion": "present",
                     "perineural_invasion": "absent", "tumour_size_mm": 45.0},
        "cleaned": {"tumour_size_mm": 450.0},
    },
    {
        "name": "melanoma_node_positive",
        "text": "FINAL DIAGNOSIS: Nodular melanoma, Breslow depth 4.5 mm, ulcerated. Margins clear. "
                "Sentinel lymph nodes: metastatic melanoma in 2 of 3 nodes. pT4b pN2a",
        "expected": {"diagnosis": "nodular melanoma", "margin": "negative", "lymph_nodes_positive": 2,
                     "lymph_nodes_examined": 3, "lymph_node_status": "positive", "pt_stage": "pt4",
                     "pn_stage": "pn2"},
    },
    {
        "name": "endometrium_serous_words",
        "text": "Endometrium: serous carcinoma, high grade, with extensive lymph-vascular space invasion. "
                "Cervical stromal involvement is not identified. All margins free. Pelvic lymph nodes: "
                "five of nine positive.",
        "expected": {"diagnosis": "serous carcinoma", "grade": "high grade", "margin": "negative",
                     "lymph_nodes_positive": 5, "lymph_nodes_examined": 9, "lymph_node_status": "positive",
                     "lymphovascular_invasion": "present"},
    },
    {
        "name": "liver_cholangio",
        "text": "Liver, left lobe, resection: Intrahepatic cholangiocarcinoma, moderately differentiated, "
                "5.2 cm. Perineural invasion is identified. Microvascular invasion not seen. Parenchymal "
                "margin positive.",
        "expected": {"diagnosis": "cholangiocarcinoma", "grade": "moderately differentiated",
                     "margin": "positive", "lymphovascular_invasion": "absent", "perineural_invasion": "present",
                     "tumour_size_mm": 52.0},
        "cleaned": {"tumour_size_mm": 520.0},
    },
]
